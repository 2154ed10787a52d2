"""BLEU and chrF between generated text and references (sacreBLEU), right for Chinese and English.

Settings, and why:

* **Tokenisation.** BLEU counts word n-grams, so it depends on how text is split into "words".
  Chinese has no spaces: with the default ``13a`` tokenizer a whole Chinese sentence is one
  token, and any one-character difference scores 0. ``tokenize=None`` therefore picks ``"zh"`` for
  Chinese text and ``"13a"`` (sacreBLEU's default, the WMT standard) otherwise. sacreBLEU's ``zh``
  tokenizer puts spaces around every CJK character (ideographs, CJK and full-width punctuation)
  and then applies ``13a`` to the rest, so Chinese is scored character by character while Latin
  words and numbers inside Chinese text stay whole words (``我看了2 books`` -> ``我 看 了 2 books``).
  The ``char`` tokenizer would also split Chinese into characters but splits English words into
  letters too, which inflates scores for mixed text; pass ``tokenize="char"`` explicitly if that
  is wanted. (sacreBLEU's ``zh`` table misses the newest CJK blocks, e.g. U+9FBC..U+9FFF and
  Extension B; such rare characters stay glued to their neighbours.)
* **Effective order** is on. Standard corpus BLEU takes the geometric mean of 1- to 4-gram
  precisions; if *every* hypothesis is shorter than 4 tokens there are no 4-grams at all and
  sacreBLEU's default returns 0 no matter how good the text is (e.g. ``你好`` vs ``你好`` scores 0).
  With ``effective_order=True`` orders that have no n-grams in the hypotheses are left out of the
  mean. On any corpus with a hypothesis of 4+ tokens the corpus score is identical to the default;
  for :func:`sentence_bleu_chrf` it is what sacreBLEU itself recommends.
* **Smoothing**: sacreBLEU's default ``exp`` (an n-gram order with zero matches counts as
  1/(2^k * total) instead of 0), so one missing order does not zero a short text's score.
* **chrF**: sacreBLEU defaults (character 6-grams, beta 2, no word n-grams, whitespace ignored).
  chrF never needs a tokenizer -- it is character based, so it suits Chinese as is; chrF++
  (word n-grams) is not used because Chinese "words" would be whole space-free sentences.

Scores are on sacreBLEU's 0-100 scale. One reference per hypothesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from xuxie.chars import is_han
from xuxie.errors import XuxieError

CHINESE_SHARE = 0.3  # CJK share of non-space characters above which text counts as Chinese

def is_chinese(texts: str | Iterable[str], threshold: float = CHINESE_SHARE) -> bool:
    """True when Chinese characters (CJK ideographs) are more than ``threshold`` of the non-space characters.

    ``texts`` is one string or several. Punctuation counts as a non-CJK character, so ordinary
    Chinese prose (about 85% ideographs) is far above the default 30%, and English with a few
    Chinese names in it is far below. Empty or all-whitespace input is not Chinese.
    """
    if isinstance(texts, str):
        texts = [texts]
    total = cjk = 0
    for text in texts:
        for ch in text:
            if not ch.isspace():
                total += 1
                cjk += is_han(ch)
    return total > 0 and cjk / total > threshold


def _metrics(tokenize: str):
    from sacrebleu.metrics import BLEU, CHRF

    if tokenize not in BLEU.TOKENIZERS:
        choices = ", ".join(sorted(BLEU.TOKENIZERS))
        raise XuxieError(f"unknown BLEU tokenizer '{tokenize}'; choose one of: {choices}")
    return BLEU(tokenize=tokenize, effective_order=True, smooth_method="exp"), CHRF()


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str]]:
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise XuxieError("hypotheses and references must be lists of strings, not single strings (use sentence_bleu_chrf for one pair)")
    hyps, refs = list(hypotheses), list(references)
    if not hyps and not refs:
        raise XuxieError("nothing to score: the hypothesis and reference lists are empty")
    if len(hyps) != len(refs):
        raise XuxieError(f"{len(hyps)} hypotheses but {len(refs)} references; each hypothesis needs exactly one reference")
    for kind, items in (("hypothesis", hyps), ("reference", refs)):
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise XuxieError(f"{kind} {i} is a {type(item).__name__}, not a string")
    return hyps, refs


def _choose_tokenize(tokenize: str | None, texts: Iterable[str]) -> str:
    if tokenize is not None:
        return tokenize
    return "zh" if is_chinese(texts) else "13a"


def bleu_chrf(hypotheses: list[str], references: list[str], tokenize: str | None = None) -> dict:
    """Corpus BLEU and chrF of ``hypotheses`` against ``references`` (one reference each, same order).

    Returns ``{"bleu": float, "chrf": float, "tokenize": str, "n": int}`` with scores on a 0-100
    scale, the BLEU tokenizer used and the number of pairs. ``tokenize=None`` uses ``"zh"``
    (character-level for Chinese) when the references (or, if they have no text, the hypotheses)
    are Chinese by :func:`is_chinese`, else ``"13a"``; any sacreBLEU tokenizer name can be given.
    See the module docstring for the effective-order and smoothing settings. Raises XuxieError on
    empty or unequal lists.
    """
    hyps, refs = _check(hypotheses, references)
    tok = _choose_tokenize(tokenize, refs if any(r.strip() for r in refs) else hyps)
    bleu, chrf = _metrics(tok)
    ref_streams = [refs]
    return {
        "bleu": float(bleu.corpus_score(hyps, ref_streams).score),
        "chrf": float(chrf.corpus_score(hyps, ref_streams).score),
        "tokenize": tok,
        "n": len(hyps),
    }


def sentence_bleu_chrf(hypothesis: str, reference: str, tokenize: str | None = None) -> dict:
    """BLEU and chrF of one hypothesis against one reference; same keys and settings as :func:`bleu_chrf` (``n`` is 1)."""
    if not isinstance(hypothesis, str) or not isinstance(reference, str):
        raise XuxieError("sentence_bleu_chrf takes one hypothesis string and one reference string")
    tok = _choose_tokenize(tokenize, [reference] if reference.strip() else [hypothesis])
    bleu, chrf = _metrics(tok)
    return {
        "bleu": float(bleu.sentence_score(hypothesis, [reference]).score),
        "chrf": float(chrf.sentence_score(hypothesis, [reference]).score),
        "tokenize": tok,
        "n": 1,
    }


__all__ = ["CHINESE_SHARE", "bleu_chrf", "is_chinese", "sentence_bleu_chrf"]
