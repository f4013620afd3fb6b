"""ChatBridge for the Hugging Face stack. Importing this package registers "chatbridge" and "beats" with the Auto classes."""

from transformers.pipelines import PIPELINE_REGISTRY

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
    AutoVideoProcessor,
)

from .configuration_beats import BeatsConfig
from .configuration_chatbridge import ChatBridgeConfig
from .feature_extraction_beats import BeatsFeatureExtractor
from .image_processing_chatbridge import ChatBridgeImageProcessor
from .modeling_beats import BeatsModel, BeatsPreTrainedModel
from .modeling_chatbridge import ChatBridgeForConditionalGeneration, ChatBridgeModel, ChatBridgePreTrainedModel
from .pipeline_chatbridge import ChatBridgePipeline
from .processing_chatbridge import ChatBridgeProcessor
from .video_processing_chatbridge import ChatBridgeVideoProcessor


def _register() -> None:
    AutoConfig.register(BeatsConfig.model_type, BeatsConfig, exist_ok=True)
    AutoModel.register(BeatsConfig, BeatsModel, exist_ok=True)
    AutoConfig.register(ChatBridgeConfig.model_type, ChatBridgeConfig, exist_ok=True)
    AutoModel.register(ChatBridgeConfig, ChatBridgeModel, exist_ok=True)
    AutoModelForImageTextToText.register(ChatBridgeConfig, ChatBridgeForConditionalGeneration, exist_ok=True)
    AutoModelForMultimodalLM.register(ChatBridgeConfig, ChatBridgeForConditionalGeneration, exist_ok=True)
    AutoFeatureExtractor.register(BeatsConfig, BeatsFeatureExtractor, exist_ok=True)
    # One class for every backend: only PIL reproduces the original's pixels, whichever backend is asked for.
    image_processors = {"pil": ChatBridgeImageProcessor, "torchvision": ChatBridgeImageProcessor}
    AutoImageProcessor.register(ChatBridgeConfig, image_processor_classes=image_processors, exist_ok=True)
    AutoVideoProcessor.register(ChatBridgeConfig, ChatBridgeVideoProcessor, exist_ok=True)
    AutoProcessor.register(ChatBridgeConfig, ChatBridgeProcessor, exist_ok=True)
    if "chatbridge" not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(
            "chatbridge", pipeline_class=ChatBridgePipeline, pt_model=AutoModelForMultimodalLM, type="multimodal"
        )
    # Saved checkpoints carry their code, so they load with `trust_remote_code=True` where this package is absent.
    BeatsConfig.register_for_auto_class()
    BeatsModel.register_for_auto_class("AutoModel")
    ChatBridgeConfig.register_for_auto_class()
    ChatBridgeModel.register_for_auto_class("AutoModel")
    ChatBridgeForConditionalGeneration.register_for_auto_class("AutoModelForMultimodalLM")
    BeatsFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    ChatBridgeImageProcessor.register_for_auto_class("AutoImageProcessor")
    ChatBridgeVideoProcessor.register_for_auto_class("AutoVideoProcessor")
    ChatBridgeProcessor.register_for_auto_class("AutoProcessor")


_register()

__all__ = [
    "BeatsConfig",
    "BeatsFeatureExtractor",
    "BeatsModel",
    "BeatsPreTrainedModel",
    "ChatBridgeConfig",
    "ChatBridgeForConditionalGeneration",
    "ChatBridgeImageProcessor",
    "ChatBridgeModel",
    "ChatBridgePipeline",
    "ChatBridgePreTrainedModel",
    "ChatBridgeProcessor",
    "ChatBridgeVideoProcessor",
]
