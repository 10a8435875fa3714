; Inno Setup script for the Windows installer of desktop-sr (Inno Setup 6: https://jrsoftware.org/isinfo.php).
;
; Build the one-folder bundle first on Windows (python packaging\build.py), then either let build.py call the
; compiler (it does when ISCC.exe is on PATH or in the default Inno Setup folder), or run it by hand:
;
;   iscc /DAppVersion=X.Y.Z /DVariant=cpu /DSourceDir=..\..\dist\desktop-sr /DOutputDir=..\..\dist packaging\windows\desktop-sr.iss
;
; The version must be desktop_sr.__version__ (build.py passes it); it is never written here, so it lives in one place.
; Installs per user by default (no administrator rights needed; the bundle is ~1 GB CPU, ~4 GB CUDA), or for all
; users when the person chooses so on the first page. Uninstalling leaves models and settings in the user's profile.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z (python packaging\build.py does)
#endif
#ifndef Variant
  #define Variant "cpu"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\desktop-sr"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
; AppId identifies the app for upgrades and uninstall: never change it between versions.
AppId={{6C3B7E52-2F0A-4F8E-9B1D-5A7D2C9E41F3}
AppName=desktop-sr
AppVersion={#AppVersion}
AppVerName=desktop-sr {#AppVersion} ({#Variant})
AppPublisher=desktop-sr contributors
DefaultDirName={autopf}\desktop-sr
DefaultGroupName=desktop-sr
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=desktop-sr-{#AppVersion}-windows-x64-{#Variant}-setup
SetupIconFile=..\..\desktop_sr\resources\desktop-sr.ico
UninstallDisplayIcon={app}\desktop-sr.exe
; torch's DLLs compress well with LZMA2; solid compression makes the installer smaller but slower to build.
Compression=lzma2/max
SolidCompression=yes
LZMANumBlockThreads=4
WizardStyle=modern
; Close a running copy before replacing its DLLs.
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; A new version may ship different torch/Qt DLLs: remove the old bundle's files so none linger.
Type: filesandordirs; Name: "{app}\_internal"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\desktop-sr"; Filename: "{app}\desktop-sr.exe"; Comment: "Photo super-resolution"
Name: "{autodesktop}\desktop-sr"; Filename: "{app}\desktop-sr.exe"; Tasks: desktopicon

[Registry]
; "Open with" desktop-sr for photos, without taking over the default app.
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\SupportedTypes"; ValueType: string; ValueName: ".jpg"; ValueData: ""; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\SupportedTypes"; ValueType: string; ValueName: ".jpeg"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\SupportedTypes"; ValueType: string; ValueName: ".png"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\SupportedTypes"; ValueType: string; ValueName: ".tif"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\SupportedTypes"; ValueType: string; ValueName: ".tiff"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\SupportedTypes"; ValueType: string; ValueName: ".webp"; ValueData: ""
Root: HKA; Subkey: "Software\Classes\Applications\desktop-sr.exe\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\desktop-sr.exe"" ""%1"""

[Run]
Filename: "{app}\desktop-sr.exe"; Description: "{cm:LaunchProgram,desktop-sr}"; Flags: nowait postinstall skipifsilent

[Code]
{ Check the installation the way the README does: the console twin runs the self-test without a window (torch,
  Qt, the bundled model on the sample photo). Skipped for silent installs driven by deployment tools, which can run
  desktop-sr-cli.exe --selftest themselves and read its exit code. }
procedure CurStepChanged(CurStep: TSetupStep);
var
  ResultCode: Integer;
begin
  if (CurStep = ssPostInstall) and not WizardSilent() then
  begin
    WizardForm.StatusLabel.Caption := 'Checking the installation...';
    if not Exec(ExpandConstant('{app}\desktop-sr-cli.exe'), '--selftest', '', SW_HIDE, ewWaitUntilTerminated,
                ResultCode) or (ResultCode <> 0) then
      MsgBox('desktop-sr was installed, but its self-test failed (exit code ' + IntToStr(ResultCode) + '). ' +
             'Run "desktop-sr-cli.exe --selftest" in ' + ExpandConstant('{app}') + ' to see the reason.',
             mbError, MB_OK);
  end;
end;
