"""Sentence BLEU references for crates/lathe-train's BLEU metric, from sacrebleu.

Run in a scratch virtualenv with `pip install sacrebleu`:
    python bench/reference/make_bleu_reference.py > crates/lathe-train/tests/reference/bleu_sacrebleu.json
"""
import json

import sacrebleu

PAIRS = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("the cat", "The cat sat on the mat."),
    ("", "The cat sat on the mat."),
    ("The cat sat on the mat.", ""),
    ("Hello", "Hello"),
    ("Hello world", "Hello there world"),
    ("It costs $3.50, not 3,000 dollars.", "It costs $3.50 - not 3,000 dollars!"),
    ("Numbers: 1,234.56 and 7.8; ranges 10-20.", "Numbers: 1,234.56 and 7.8, ranges 10 - 20."),
    ("Use <b>bold</b> &amp; italics &quot;here&quot;.", "Use <b>bold</b> & italics \"here\"."),
    ("e-mail me at a@b.com (today)!", "Email me at a@b.com today!"),
    ("1. Eat well.\n2. Sleep.\n3. Exercise.", "1. Eat a balanced diet.\n2. Sleep enough.\n3. Exercise regularly."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("to be or not to be", "to be or not to be that is the question"),
    ("x y z", "a b c"),
    ("the the the the the the", "the cat is on the mat"),
    ("Hyphen-ated words and end-\nof-line breaks", "Hyphenated words and end-of-line breaks"),
    ("Ünïcödé text, with accents: café, naïve.", "Unicode text with accents: café, naive."),
    ("A long answer that goes on and on with many words but only few of them match the reference at all really",
     "A short reference answer"),
    ("tabs\tand   spaces  ", "tabs and spaces"),
]

print(json.dumps(
    [{"hypothesis": h, "reference": r, "bleu": sacrebleu.sentence_bleu(h, [r]).score} for h, r in PAIRS],
    indent=1, ensure_ascii=False,
))
