"""train -> evaluate -> predict through `easynlp` in-process, with EasyNLP TSV in and out."""
import json

from easynlp_bp.cli import main


def test_train_evaluate_predict(tmp_path, synthetic_pairs, capsys):
    train = tmp_path / "train.tsv"
    dev = tmp_path / "dev.tsv"
    train.write_text("".join(f"{p['raw_prompt']}\t{p['prompt']}\n" for p in synthetic_pairs[:300]))
    dev.write_text("".join(f"{p['raw_prompt']}\t{p['prompt']}\n" for p in synthetic_pairs[300:340]))
    ckpt = tmp_path / "model"
    schema = "--input_schema=raw_prompt:str:1,prompt:str:1"
    assert main(["--app_name=beautiful_prompt", "--mode=train", f"--tables={train},{dev}", schema,
                 f"--checkpoint_dir={ckpt}", "--epoch_num=2", "--micro_batch_size=16", "--logging_steps=5"]) == 0
    run_config = json.loads((ckpt / "run_config.json").read_text())
    assert run_config["resolved"]["hyperparameters"]["learning_rate"] == 3e-3  # from-scratch preset
    assert run_config["resolved"]["hyperparameters"]["micro_batch_size"] == 16  # the flag wins
    assert run_config["resolved"]["data"][str(train)] == {"read": 300, "kept": 300, "rejected": 0}
    # random init: ≈ ln(vocabulary) ≈ 7.6; measured 5.42 after 38 steps (the default's open-vocabulary raw
    # prompts are not yet copied this early; a closed word list would be learnt by heart and reach < 3.0)
    assert run_config["resolved"]["result"]["eval_loss"] < 6.0

    eval_out = tmp_path / "eval.json"
    assert main(["--app_name=beautiful_prompt", "--mode=evaluate", f"--tables={dev}", schema,
                 f"--checkpoint_dir={ckpt}", f"--outputs={eval_out}",
                 "--user_defined_parameters=eval_generation_samples=8 max_new_tokens=40"]) == 0
    results = json.loads(eval_out.read_text())
    assert results["rows"] == 40 and 0 < results["eval_loss"] < 6.0
    assert results["perplexity"] > 1.0 and results["generated"]["count"] == 8
    assert 0 < results["generated"]["distinct_1"] <= 1

    table = tmp_path / "test.tsv"
    table.write_text("1\t1 girl\n2\ta cat on the beach\n3\t\n4\ta castle at night\n")
    out = tmp_path / "pred.tsv"
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--tables={table}",
                 "--input_schema=id:str:1,raw_prompt:str:1", "--append_cols=id,raw_prompt",
                 "--output_schema=predictions,beams", f"--outputs={out}", f"--checkpoint_dir={ckpt}",
                 "--user_defined_parameters=num_return_sequences=2 seed=1 max_new_tokens=40"]) == 0
    lines = out.read_text().splitlines()
    # EasyNLP's order: output_schema (predictions, beams joined with "||"), then append_cols (id, raw_prompt)
    assert [line.split("\t")[2] for line in lines] == ["1", "2", "4"]  # input order kept
    for line in lines:
        predictions, beams, _, _ = line.split("\t")
        assert len(beams.split("||")) == 2 and beams.split("||")[0] == predictions
    rejects = [json.loads(l) for l in (tmp_path / "pred.tsv.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["reason"]) for r in rejects] == [(3, "field 'raw_prompt' is empty")]
    assert len(lines) + len(rejects) == 4


def test_predict_without_outputs_prints(trained_sft_dir, capsys):
    assert main(["--app_name=beautiful_prompt", "--mode=predict", f"--checkpoint_dir={trained_sft_dir}",
                 "--user_defined_parameters=num_return_sequences=2 seed=0 max_new_tokens=30"]) == 0
    out = capsys.readouterr().out
    assert ">>> 1 girl" in out and out.count("  - ") == 8


def test_predict_without_a_model_says_how_to_get_one(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["--app_name=beautiful_prompt", "--mode=predict"]) == 2
    assert "Train one first" in capsys.readouterr().err
