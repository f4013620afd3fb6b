"""Tests of the evaluate metrics in transformers_chatbridge.evaluation.metrics.

CIDEr-D and BLEU are compared with pycocoevalcap (dev extra) fed with the output of our Python PTB tokeniser, so no
Java is needed; the tokeniser itself is compared with pycocoevalcap's Java PTBTokenizer only where `java` is on PATH.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from transformers_chatbridge.evaluation.metrics import (
    METRIC_NAMES,
    bleu_scores,
    cider_d_scores,
    load_metric,
    match_class,
    normalize_text,
    normalize_vqa_answer,
    ptb_tokenize,
    vqa_accuracy_scores,
)

# (prediction, references): varied punctuation, casing, repeated words, quotes, brackets, contractions, numbers.
CAPTIONS = [
    ("A man riding a wave on top of a surfboard.", ["A man riding a wave on a surfboard.", "A surfer rides a big wave.", "Man on a surfboard riding an ocean wave"]),
    ("two dogs playing in the grass", ["Two dogs play in the grass.", "Two brown dogs are playing on a lawn!", "A pair of dogs running around in a field."]),
    ("A DOG DOG DOG running", ["A dog is running.", "the dog runs across the yard"]),
    ("A cat, sitting on a couch; looking at the camera.", ["A cat sits on a couch.", "The cat is sitting on the sofa, looking at the camera."]),
    ("a plate of food (rice and beans) on a table", ["A plate with rice and beans.", "Food on a plate [rice & beans] sits on a table."]),
    ("He said \"hello\" to the dog's owner", ["A man greets the owner of a dog.", "Someone says 'hello' to a dog owner"]),
    ("It's a red bus that isn't moving.", ["A red bus that's parked.", "The bus isn't moving; it's red.", "A red double-decker bus can't move"]),
    ("The U.S. flag flies over Mr. Smith's house", ["An American flag on a house.", "The US flag flying above a house."]),
    ("A well-known man -- wearing a hat - stands... there", ["A man in a hat stands there.", "A famous man wearing a hat"]),
    ("a man holding a frisbee!!", ["A man holds a frisbee.", "A man is holding a white frisbee!"]),
    ("What is this?! A kite?", ["A kite flying in the sky.", "Someone flies a kite?"]),
    ("It costs $5.50 or 50% of 1,000 dollars", ["The price is $5.50.", "It is 50% off."]),
    ("A giraffe standing next to a tree.", ["A giraffe stands near a tree.", "A tall giraffe standing beside a tree", "Giraffe next to a tree in a zoo."]),
    ("a giraffe a giraffe a giraffe", ["A giraffe stands near a tree.", "Two giraffes in a field."]),
    ("Two people are standing near a bus stop, waiting.", ["People waiting at a bus stop.", "Two people stand at the bus stop."]),
    ("A kitchen with a stove, a sink and a refrigerator.", ["A kitchen with a stove and a fridge.", "A small kitchen: sink, stove, refrigerator."]),
    ("a train on the tracks", ["A train traveling down the tracks.", "A red and white train on train tracks."]),
    ("", ["A man eating a sandwich.", "Someone eats a sandwich."]),
    ("pizza", ["A pizza on a table.", "A large pizza with cheese and pepperoni."]),
    ("A woman's tennis racket; she's hitting the ball at 10:30 a.m.", ["A woman swings her tennis racket.", "A tennis player hits the ball in the morning."]),
    ("The colour of the harbour, and/or 3/4 of it", ["A harbour with boats.", "Boats in the harbour at dusk."]),
    ("A cat's toy and the dogs' bowls...", ["Pet toys and bowls.", "A toy for the cat and bowls for the dogs."]),
    ("I'm sure we'll see they've gone, can't you? Won't you?", ["They have gone.", "We will see that they have gone."]),
    ("A bird perched on a branch", ["A bird sitting on a tree branch.", "A small bird perched on a branch.", "a bird on a branch"]),
    ("  Multiple   spaces\tand\na newline  ", ["Spaces and newlines.", "multiple spaces"]),
]


# 50 caption groups: the examples above, and each example's references paired with another example's caption.
FIFTY_GROUPS = CAPTIONS + [(CAPTIONS[(i + 7) % len(CAPTIONS)][1][0], refs) for i, (_, refs) in enumerate(CAPTIONS)]


def test_cider_matches_pycocoevalcap_on_fifty_groups():
    from pycocoevalcap.cider.cider import Cider

    predictions = [ptb_tokenize(prediction) for prediction, _ in FIFTY_GROUPS]
    references = [[ptb_tokenize(reference) for reference in refs] for _, refs in FIFTY_GROUPS]
    expected, expected_scores = Cider().compute_score(
        dict(enumerate(references)), {i: [prediction] for i, prediction in enumerate(predictions)}
    )
    score, scores = cider_d_scores(predictions, references)
    assert len(FIFTY_GROUPS) == 50
    assert score == pytest.approx(float(expected), abs=1e-6)
    assert scores == pytest.approx([float(value) for value in expected_scores], abs=1e-6)


def test_bleu4_equals_nltk_corpus_bleu():
    """Equal wherever every caption has at least 4 tokens; for shorter ones nltk counts one n-gram slot per
    caption where pycocoevalcap (which we follow) counts none."""
    from nltk.translate.bleu_score import corpus_bleu

    groups = [group for group in FIFTY_GROUPS if len(ptb_tokenize(group[0]).split()) >= 4]
    predictions = [ptb_tokenize(prediction) for prediction, _ in groups]
    references = [[ptb_tokenize(reference) for reference in refs] for _, refs in groups]
    ours, _ = bleu_scores(predictions, references)
    split_references = [[reference.split() for reference in refs] for refs in references]
    for n in range(1, 5):
        expected = corpus_bleu(split_references, [p.split() for p in predictions], weights=(1 / n,) * n)
        assert ours[n - 1] == pytest.approx(expected, abs=1e-6)


def _pycoco_inputs():
    gts = {i: [ptb_tokenize(r) for r in refs] for i, (_, refs) in enumerate(CAPTIONS)}
    res = {i: [ptb_tokenize(pred)] for i, (pred, _) in enumerate(CAPTIONS)}
    return gts, res


def test_ptb_tokenize_examples():
    assert ptb_tokenize("A man riding a wave, on top of a surfboard.") == "a man riding a wave on top of a surfboard"
    assert ptb_tokenize("It's a dog that can't swim!") == "it 's a dog that ca n't swim"
    # CoreNLP emits -LRB-, -lowerCase makes it -lrb-, which pycocoevalcap's upper-case list does not remove.
    assert ptb_tokenize("a (big) dog") == "a -lrb- big -rrb- dog"
    assert ptb_tokenize('He said "hi" to Mr. Smith.') == "he said hi to mr. smith"
    assert ptb_tokenize("What?! 1,000 dollars!!") == "what ?! 1,000 dollars !!"


@pytest.mark.skipif(shutil.which("java") is None, reason="pycocoevalcap's PTBTokenizer needs java")
def test_ptb_tokenize_matches_java_ptbtokenizer():
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    sentences = [pred for pred, _ in CAPTIONS] + [r for _, refs in CAPTIONS for r in refs]
    sentences = [s for s in sentences if s.strip()]  # an empty line would shift the Java output lines
    java = PTBTokenizer().tokenize({i: [{"caption": s}] for i, s in enumerate(sentences)})
    for i, sentence in enumerate(sentences):
        assert ptb_tokenize(sentence) == java[i][0], sentence


def test_cider_matches_pycocoevalcap():
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.cider.cider import Cider

    gts, res = _pycoco_inputs()
    expected, expected_scores = Cider().compute_score(gts, res)
    score, scores = cider_d_scores([res[i][0] for i in res], [gts[i] for i in gts])
    assert score == pytest.approx(float(expected), abs=1e-6)
    assert scores == pytest.approx([float(s) for s in expected_scores], abs=1e-6)
    assert score > 0

    metric = load_metric("cider")
    result = metric.compute(
        predictions=[p for p, _ in CAPTIONS], references=[r for _, r in CAPTIONS], return_scores=True
    )
    assert result["cider"] == pytest.approx(float(expected), abs=1e-6)
    assert result["cider_scores"] == pytest.approx([float(s) for s in expected_scores], abs=1e-6)


def test_bleu_matches_pycocoevalcap():
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu

    gts, res = _pycoco_inputs()
    expected, expected_per_sample = Bleu(4).compute_score(gts, res, verbose=0)
    bleus, per_sample = bleu_scores([res[i][0] for i in res], [gts[i] for i in gts])
    assert bleus == pytest.approx(expected, abs=1e-6)
    for ours, theirs in zip(per_sample, expected_per_sample):
        assert ours == pytest.approx(theirs, abs=1e-6)

    result = load_metric("bleu4").compute(predictions=[p for p, _ in CAPTIONS], references=[r for _, r in CAPTIONS])
    assert [result[f"bleu_{k}"] for k in range(1, 5)] == pytest.approx(expected, abs=1e-6)


def test_cider_and_bleu_on_subsets_match_pycocoevalcap():
    """Scores depend on the whole set (idf, corpus sums): compare on a few subsets too, pre-tokenised input."""
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    gts, res = _pycoco_inputs()
    for ids in ([0, 1, 2], [2, 13], list(range(5, 20)), [17, 18, 19]):
        sub_gts, sub_res = {i: gts[i] for i in ids}, {i: res[i] for i in ids}
        cider, _ = cider_d_scores([res[i][0] for i in ids], [gts[i] for i in ids])
        assert cider == pytest.approx(float(Cider().compute_score(sub_gts, sub_res)[0]), abs=1e-6)
        bleus, _ = bleu_scores([res[i][0] for i in ids], [gts[i] for i in ids])
        assert bleus == pytest.approx(Bleu(4).compute_score(sub_gts, sub_res, verbose=0)[0], abs=1e-6)
    result = load_metric("cider").compute(
        predictions=[res[i][0] for i in ids], references=[gts[i] for i in ids], tokenize=False
    )
    assert result["cider"] == pytest.approx(float(Cider().compute_score(sub_gts, sub_res)[0]), abs=1e-6)


def test_perfect_caption_scores_high():
    refs = [["a dog runs on the beach", "a dog running on a beach"], ["a red car parked on a street"]]
    bleus, _ = bleu_scores(["a dog runs on the beach", "a red car parked on a street"], refs)
    assert bleus[3] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("answer", "normalized"),
    [
        ("Two", "2"),
        ("a dog", "dog"),
        ("The Dog", "dog"),
        ("yes.", "yes"),
        ("Yes!", "yes"),
        ("dont", "don't"),
        ("whats that", "what's that"),
        ("isnt", "isn't"),
        ("hot-dog", "hot dog"),
        ("red, white", "red white"),
        ("1,000", "1000"),
        ("3.5", "3.5"),
        ("none", "0"),
        ("  ten\n", "10"),
        ("its", "its"),
    ],
)
def test_normalize_vqa_answer(answer, normalized):
    assert normalize_vqa_answer(answer) == normalized


def test_vqa_accuracy_hand_computed():
    ten = lambda *counts: [a for a, n in counts for _ in range(n)]  # noqa: E731
    cases = [
        ("Two", ten(("2", 10)), 1.0),
        ("2", ten(("two", 3), ("3", 7)), 0.9),  # 3 of 10: (7 * 1 + 3 * 2/3) / 10
        ("2", ten(("2", 2), ("3", 8)), 0.6),  # 2 of 10: (2 * 1/3 + 8 * 2/3) / 10
        ("dog", ten(("a dog", 1), ("cat", 9)), 0.3),  # (1 * 0 + 9 * 1/3) / 10
        ("yes.", ten(("yes", 4), ("no", 6)), 1.0),
        ("dont know", ten(("don't know", 10)), 1.0),
        ("cat", ten(("dog", 10)), 0.0),
    ]
    scores = vqa_accuracy_scores([c[0] for c in cases], [c[1] for c in cases])
    assert scores == pytest.approx([c[2] for c in cases])
    assert vqa_accuracy_scores(["yes"], [["Yes."]]) == [1.0]

    result = load_metric("vqa_accuracy").compute(
        predictions=[c[0] for c in cases], references=[c[1] for c in cases], return_scores=True
    )
    assert result["vqa_accuracy"] == pytest.approx(sum(c[2] for c in cases) / len(cases))
    assert result["vqa_accuracy_scores"] == pytest.approx([c[2] for c in cases])


def test_exact_match():
    assert normalize_text("The  Dog!") == "dog"
    assert normalize_text("U.S.A.") == "usa"
    metric = load_metric("exact_match")
    result = metric.compute(predictions=["The Dog!", "a cat", "Blue.", "red"], references=["dog", "Cat", "green", "red "])
    assert result["exact_match"] == pytest.approx(0.75)
    result = metric.compute(predictions=["an apple", "pear"], references=[["Apple", "apples"], ["plum"]])
    assert result["exact_match"] == pytest.approx(0.5)


def test_classification_accuracy():
    classes = ["dog", "rooster", "crackling_fire", "chirping_birds", "fire", "vacuum_cleaner", "cat"]
    assert match_class("Dog.", classes) == "dog"
    assert match_class("This is the sound of a crackling fire.", classes) == "crackling_fire"  # longest match wins
    assert match_class("I hear a vacuum-cleaner", classes) == "vacuum_cleaner"
    assert match_class("a dog and a cat", classes) == "dog"  # tie: first in the answer
    assert match_class("a cat and a dog", classes) == "cat"
    assert match_class("It sounds like dogs barking", classes) is None  # whole words only
    assert match_class("firetruck", classes) is None

    metric = load_metric("classification_accuracy")
    result = metric.compute(
        predictions=["It is a rooster crowing.", "crackling fire", "Birds chirping", "The cat meows"],
        references=["rooster", "crackling_fire", "chirping_birds", "dog"],
        class_names=classes,
        return_predicted_classes=True,
    )
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["predicted_classes"] == ["rooster", "crackling_fire", None, "cat"]
    with pytest.raises(ValueError):
        metric.compute(predictions=["dog"], references=["horse"], class_names=classes)


def test_load_metric_offline_in_subprocess(tmp_path):
    code = (
        "import json\n"
        "from transformers_chatbridge.evaluation.metrics import METRIC_NAMES, load_metric\n"
        "names = [type(load_metric(name)).__name__ for name in METRIC_NAMES]\n"
        "r = load_metric('cider').compute(predictions=['a dog runs', 'a cat'], references=[['a dog runs'], ['a cat sits']])\n"
        "print(json.dumps({'names': names, 'cider': r['cider']}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["names"] == ["Cider", "Bleu4", "VqaAccuracy", "ExactMatch", "ClassificationAccuracy"]
    assert len(out["names"]) == len(METRIC_NAMES)
    assert out["cider"] > 0


def test_unknown_metric():
    with pytest.raises(ValueError):
        load_metric("rouge")
