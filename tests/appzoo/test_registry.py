import pytest

from easynlp_bp.registry import Registry


def test_register_and_get():
    reg = Registry("widget")

    @reg.register("alpha")
    class Alpha:
        pass

    assert reg.get("alpha") is Alpha
    assert reg.names() == ["alpha"]
    assert "alpha" in reg


def test_duplicate_name_fails():
    reg = Registry("widget")
    reg.register("alpha")(object)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("alpha")(int)


def test_miss_lists_names_and_suggests():
    reg = Registry("app")
    reg.register("beautiful_prompt")(object)
    reg.register("beautiful_prompt_ppo")(object)
    with pytest.raises(KeyError, match=r"Did you mean 'beautiful_prompt'\?.*Registered: beautiful_prompt, beautiful_prompt_ppo"):
        reg.get("beautifull_prompt")
