"""User-defined subclasses living outside the package: each marks what it did, so tests can see it was used."""
from easynlp_bp.ppo.trainer import PPOTrainer
from easynlp_bp.prompting.predictor import BeautifulPromptPredictor
from easynlp_bp.reward.evaluator import RewardEvaluator
from easynlp_bp.sft.data import BeautifulPromptDataset
from easynlp_bp.sft.evaluator import BeautifulPromptEvaluator
from easynlp_bp.models.causal_lm import BeautifulPromptModel


class ShoutingPredictor(BeautifulPromptPredictor):
    """Upper-cases every output (predict_results is what predict(), run() and the server all call)."""

    def predict_results(self, raw_prompts, overrides=None, progress=False):
        results = super().predict_results(raw_prompts, overrides, progress)
        for result in results:
            result.outputs = [text.upper() for text in result.outputs]
        return results


class CountingDataset(BeautifulPromptDataset):
    """Records how many datasets were built."""

    built = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        type(self).built += 1


class TaggedModel(BeautifulPromptModel):
    """Marks the loaded model."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        loaded.model.config.user_tag = "tagged"
        return loaded


class ConstantEvaluator(BeautifulPromptEvaluator):
    """Adds a fixed marker to the results."""

    def evaluate(self, predictor, samples):
        return {**super().evaluate(predictor, samples), "user_evaluator": True}


class MarkingRewardEvaluator(RewardEvaluator):
    def evaluate(self, reward_model):
        return {**super().evaluate(reward_model), "user_evaluator": True}


class CountingPPOTrainer(PPOTrainer):
    steps = 0

    def step(self, *args, **kwargs):
        type(self).steps += 1
        return super().step(*args, **kwargs)


class ShortPromptTerm:
    """A reward term defined outside the package: minus the prompt's length in characters / 100."""

    name = "short_prompt"
    deltaed = False

    def __init__(self, weight):
        self.weight = weight

    @classmethod
    def build(cls, weight, context):
        return cls(weight)

    def score(self, raw_prompts, prompts):
        import torch

        return torch.tensor([-len(p) / 100 for p in prompts])
