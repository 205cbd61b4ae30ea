"""EasyNLP command lines run here as written in EasyNLP's tutorials (only app, model and data adapted),
while real typos still fail with "did you mean".

The lines come from EasyNLP's ``examples/appzoo_tutorials/sequence_generation/
run_train_eval_predict_appzoo_cli_local_en.sh`` (train / evaluate / predict), ``..._appzoo_cpu.sh`` (CPU)
and its README's text_classify predict line.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex

import pytest

from easynlp_bp.cli import main


def easynlp(command: str) -> int:
    """Run a shell-style ``easynlp ...`` line in-process (backslash-newlines and quotes as a shell reads them)."""
    argv = shlex.split(command.replace("\\\n", " "))
    assert argv[0] in ("easynlp", "python")
    return main(argv[1:] if argv[0] == "easynlp" else argv[2:])


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory, synthetic_pairs, tiny_model_dir):
    """en_train.tsv / en_dev.tsv in EasyNLP's header-less 2-column layout (title<TAB>content -> prompt<TAB>raw)."""
    root = tmp_path_factory.mktemp("easynlp_tutorial")
    rows = [p for p in synthetic_pairs if len(p["prompt"]) > 150][:16]
    (root / "en_train.tsv").write_text("".join(f"{p['prompt']}\t{p['raw_prompt']}\n" for p in rows[:12]))
    (root / "en_dev.tsv").write_text("".join(f"{p['prompt']}\t{p['raw_prompt']}\n" for p in rows[12:]))
    return {"root": root, "model": tiny_model_dir, "dev_rows": rows[12:]}


@pytest.fixture(scope="module")
def finetuned(tutorial):
    root, model = tutorial["root"], tutorial["model"]
    code = easynlp(f"""easynlp \\
  --app_name=beautiful_prompt \\
  --mode=train \\
  --worker_gpu=1 \\
  --tables={root}/en_train.tsv,{root}/en_dev.tsv  \\
  --input_schema=prompt:str:1,raw_prompt:str:1 \\
  --first_sequence=raw_prompt \\
  --second_sequence=prompt \\
  --label_name=prompt \\
  --checkpoint_dir={root}/finetuned_en_model \\
  --micro_batch_size=1 \\
  --sequence_length=512 \\
  --save_checkpoint_steps=2000 \\
  --export_tf_checkpoint_type none \\
  --user_defined_parameters 'pretrain_model_name_or_path={model} copy=false max_encoder_length=512 min_decoder_length=64 max_decoder_length=128 no_repeat_ngram_size=2 num_beams=5 num_return_sequences=5'
""")
    assert code == 0
    return root / "finetuned_en_model"


def test_seq_gen_train_line_runs_and_warns_once_per_ignored_flag(finetuned, tutorial, caplog):
    config = json.loads((finetuned / "run_config.json").read_text())
    udp = config["user_defined_parameters"]
    # EasyNLP's decoder lengths became the predictor's new-token bounds; num_beams=5 means beam search
    assert (udp["max_new_tokens"], udp["min_new_tokens"], udp["no_repeat_ngram_size"]) == (128, 64, 2)
    assert (udp["decoding"], udp["num_beams"]) == ("beam", 5)
    assert config["resolved"]["hyperparameters"]["micro_batch_size"] == 1


def test_ignored_flags_and_keys_log_one_line_saying_why(caplog, tmp_path):
    with caplog.at_level(logging.WARNING):
        code = main(["--app_name=beautiful_prompt", "--mode=predict", "--export_tf_checkpoint_type", "none",
                     "--worker_cpu=1", "--distributed_backend=gloo", "--use_amp",
                     f"--checkpoint_dir={tmp_path}/missing"])
    assert code == 2  # the missing model, not the flags
    warnings = [r.getMessage() for r in caplog.records if "has no meaning here" in r.getMessage()]
    assert len(warnings) == 4
    assert "--export_tf_checkpoint_type=none has no meaning here and is ignored (no TensorFlow export" in warnings[0]
    assert warnings[3].startswith("--use_amp has no meaning here")


def test_seq_gen_predict_line_writes_easynlp_columns(finetuned, tutorial):
    root = tutorial["root"]
    code = easynlp(f"""easynlp \\
    --app_name=beautiful_prompt \\
    --mode predict \\
    --worker_gpu=1 \\
    --tables={root}/en_dev.tsv  \\
    --outputs={root}/en.preds.txt \\
    --input_schema=prompt:str:1,raw_prompt:str:1 \\
    --output_schema=predictions,beams \\
    --append_cols=prompt,raw_prompt \\
    --first_sequence=raw_prompt \\
    --checkpoint_dir={finetuned} \\
    --micro_batch_size 32 \\
    --sequence_length 512 \\
    --user_defined_parameters 'copy=false max_encoder_length=512 min_decoder_length=64 max_decoder_length=128 no_repeat_ngram_size=2 num_beams=5 num_return_sequences=5'
""")
    assert code == 0
    lines = (root / "en.preds.txt").read_text().splitlines()
    assert len(lines) == len(tutorial["dev_rows"])
    for line, row in zip(lines, tutorial["dev_rows"]):
        predictions, beams, prompt, raw = line.split("\t")
        assert (prompt, raw) == (row["prompt"], row["raw_prompt"])  # append_cols come after output_schema
        assert len(beams.split("||")) == 5 and beams.split("||")[0] == predictions
        assert " || " not in beams


def test_seq_gen_evaluate_line_runs(finetuned, tutorial):
    root = tutorial["root"]
    code = easynlp(f"""easynlp \\
  --app_name=beautiful_prompt \\
  --mode=evaluate \\
  --worker_gpu=1 \\
  --tables={root}/en_dev.tsv  \\
  --input_schema=prompt:str:1,raw_prompt:str:1 \\
  --output_schema=predictions,beams \\
  --append_cols=prompt,raw_prompt \\
  --first_sequence=raw_prompt \\
  --second_sequence=prompt \\
  --checkpoint_dir={finetuned} \\
  --micro_batch_size 32 \\
  --sequence_length 512 \\
  --user_defined_parameters 'copy=false max_encoder_length=512 min_decoder_length=64 max_decoder_length=128 no_repeat_ngram_size=2 num_beams=5 num_return_sequences=5'
""")
    assert code == 0
    results = json.loads((finetuned / "eval_results.json").read_text())
    assert results["rows"] == len(tutorial["dev_rows"]) and results["eval_loss"] > 0


def test_cpu_line_with_worker_gpu_0_hides_gpus(tutorial, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    root, model = tutorial["root"], tutorial["model"]
    code = easynlp(f"""python $DIR/easynlp/appzoo/api.py \\
  --distributed_backend=gloo \\
  --mode=train \\
  --app_name=beautiful_prompt \\
  --worker_gpu=0 \\
  --worker_cpu=1 \\
  --tables={root}/en_train.tsv,{root}/en_dev.tsv  \\
  --input_schema=prompt:str:1,raw_prompt:str:1 \\
  --first_sequence=raw_prompt \\
  --second_sequence=prompt \\
  --label_name=prompt \\
  --checkpoint_dir={root}/finetuned_zh_model \\
  --micro_batch_size=1 \\
  --sequence_length=512 \\
  --save_checkpoint_steps=150 \\
  --export_tf_checkpoint_type none \\
  --user_defined_parameters 'pretrain_model_name_or_path={model} copy=false max_encoder_length=512 min_decoder_length=12 max_decoder_length=32 no_repeat_ngram_size=2 num_beams=5 num_return_sequences=5'
""")
    assert code == 0
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert (root / "finetuned_zh_model" / "model.safetensors").is_file()


@pytest.fixture
def tiny_reward_dir(tmp_path, tiny_tokenizer):
    """A saved (untrained) aesthetic RM whose labels had mean 6 and std 0.5."""
    import torch
    from transformers import BloomConfig, BloomForSequenceClassification

    from easynlp_bp.models.reward_model import RewardConfig

    config = BloomConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, n_layer=2, n_head=4, num_labels=1,
                         pad_token_id=tiny_tokenizer.pad_token_id, eos_token_id=tiny_tokenizer.eos_token_id)
    torch.manual_seed(0)
    BloomForSequenceClassification(config).save_pretrained(tmp_path / "classification_model")
    tiny_tokenizer.save_pretrained(tmp_path / "classification_model")
    RewardConfig(reward_type="aesthetic", label_mean=6.0, label_std=0.5).save(tmp_path / "classification_model")
    return tmp_path


def test_text_classify_predict_line_keeps_easynlp_column_positions(tiny_reward_dir):
    root = tiny_reward_dir
    (root / "dev.tsv").write_text("1\ta\tb\tcat\ta cat, masterpiece\n0\tc\td\tdog\ta dog\n")
    code = easynlp(f"""easynlp \\
  --mode=predict \\
  --tables={root}/dev.tsv \\
  --outputs={root}/dev.pred.tsv \\
  --input_schema=label:str:1,sid1:str:1,sid2:str:1,sent1:str:1,prompt:str:1 \\
  --output_schema=predictions,probabilities,logits,output \\
  --append_cols=label \\
  --first_sequence=sent1 \\
  --checkpoint_path={root}/classification_model \\
  --app_name=beautiful_prompt_reward""")
    assert code == 0
    lines = [line.split("\t") for line in (root / "dev.pred.tsv").read_text().splitlines()]
    assert [line[4] for line in lines] == ["1", "0"]
    for predictions, probabilities, logits, output, _ in lines:
        assert float(predictions) == pytest.approx(6.0 + 0.5 * float(logits), abs=1e-4)
        assert probabilities == "" and json.loads(output)["score"] == pytest.approx(float(predictions))


@pytest.mark.parametrize("argv, message", [
    (["--app_name=beautiful_prompt", "--mode=trian"], "did you mean --mode=train"),
    (["--app_name=beautiful_prompt", "--learning_rat=1e-5"], "did you mean --learning_rate"),
    (["--app_name=beautiful_prompt", "--chekpoint_path=x"], "did you mean --checkpoint_path"),
    (["--app_name=beautiful_prompt", "--optimizer_type=SGD"], "--optimizer_type=SGD is not supported: training "
                                                              "always uses AdamW"),
    (["--app_name=beautiful_prompt", "--worker_gpu=-2"], "--worker_gpu=-2 must be 0"),
])
def test_real_typos_still_fail_with_a_suggestion(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_aliases_set_the_same_fields():
    from easynlp_bp.command_line import parse_args

    args, _ = parse_args(["--checkpoint_path=m", "--train_batch_size=7", "--wd=0.1", "--mn=2", "--worker_gpu=-1"])
    assert (args.checkpoint_dir, args.micro_batch_size, args.weight_decay, args.max_grad_norm) == ("m", 7, 0.1, 2.0)
    assert args.worker_gpu is None  # EasyNLP's default -1: not given


def test_easynlp_parsed_user_defined_parameters_dict_is_accepted():
    from easynlp_bp.arguments import parse_user_defined_parameters
    from easynlp_bp.prompting.predictor import PredictorParams

    # the shape easynlp.utils.global_vars.parse_user_defined_parameters returns
    parsed = {"max_decoder_length": "96", "copy": "false", "app_parameters": {"num_beams": 5},
              "model_parameters": {"no_repeat_ngram_size": "2"}}
    params = parse_user_defined_parameters(parsed, PredictorParams)
    assert (params.max_new_tokens, params.num_beams, params.decoding, params.no_repeat_ngram_size) == (96, 5, "beam", 2)
    with pytest.raises(ValueError, match="both max_decoder_length .* and max_new_tokens"):
        parse_user_defined_parameters("max_decoder_length=9 max_new_tokens=9", PredictorParams)
    assert parse_user_defined_parameters("num_beams=1", PredictorParams).decoding == "sample"
    assert parse_user_defined_parameters("num_beams=5 decoding=sample", PredictorParams).decoding == "sample"


def test_app_help_shows_no_required_placeholder(capsys):
    assert main(["--app_name=beautiful_prompt", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(required)" not in text
    assert re.search(r"^ *banned_words= *(\[|$)", text, re.MULTILINE), "an empty default shows as nothing"
    assert "--export_tf_checkpoint_type" in text and "--checkpoint_path" in text
