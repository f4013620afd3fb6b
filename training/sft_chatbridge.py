"""Train ChatBridge with TRL's `SFTTrainer` from a recipe: `python training/sft_chatbridge.py --config RECIPE`, or
under `accelerate launch`. The same as `chatbridge train`; the code is `transformers_chatbridge.training.sft`."""

from transformers_chatbridge.training import train

if __name__ == "__main__":
    train()
