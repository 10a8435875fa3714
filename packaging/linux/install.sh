#!/bin/sh
# Install desktop-sr from this unpacked archive: the app folder, a `desktop-sr` command, a menu entry and an icon.
#
#   ./install.sh                      for this user, under ~/.local (no root needed)
#   sudo ./install.sh --prefix /usr/local    for every user
#   ./install.sh --uninstall [--prefix DIR]  remove what an install with the same prefix put there
#
# The app is self-contained (Python, torch and Qt are inside); nothing else is installed or changed.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
prefix="${HOME}/.local"
action=install
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#*=}; shift ;;
        --uninstall) action=uninstall; shift ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

app_dir="$prefix/lib/desktop-sr"
command="$prefix/bin/desktop-sr"
entry="$prefix/share/applications/desktop-sr.desktop"
icon="$prefix/share/icons/hicolor/256x256/apps/desktop-sr.png"

refresh_menus() {
    # Menus pick up the new entry and icon sooner; harmless when the tools are missing.
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$prefix/share/applications" || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" || true
}

if [ "$action" = uninstall ]; then
    rm -rf "$app_dir"
    rm -f "$command" "$entry" "$icon"
    refresh_menus
    echo "desktop-sr removed from $prefix (models and settings in your home folder are kept)"
    exit 0
fi

if [ ! -x "$here/desktop-sr/desktop-sr" ]; then
    echo "install.sh: $here/desktop-sr/desktop-sr not found; run this script from the unpacked archive" >&2
    exit 1
fi
mkdir -p "$prefix/lib" "$prefix/bin" "$(dirname "$entry")" "$(dirname "$icon")"
rm -rf "$app_dir.new"
cp -a "$here/desktop-sr" "$app_dir.new"   # copy first, then swap, so a failed copy keeps the old version working
rm -rf "$app_dir"
mv "$app_dir.new" "$app_dir"
# A small launcher rather than a symlink: the app finds its _internal folder next to the real executable.
printf '#!/bin/sh\nexec "%s/desktop-sr" "$@"\n' "$app_dir" > "$command"
chmod 755 "$command"
sed -e "s|^Exec=.*|Exec=\"$app_dir/desktop-sr\" %f|" -e "s|^TryExec=.*|TryExec=$app_dir/desktop-sr|" \
    "$here/desktop-sr.desktop" > "$entry"
cp "$here/desktop-sr.png" "$icon"
refresh_menus

echo "desktop-sr installed in $app_dir"
echo "  start it from the applications menu, or run: $command"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "  ($prefix/bin is not on your PATH; add it, or use the full path)" ;; esac
echo "  check the installation without a display: $command --selftest"
