"""xuxie.analysis: metrics on generated text, checked against answers worked out by hand and brute force."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from xuxie.analysis import (
    CorpusIndex,
    distinct_n,
    lcp_array,
    length_stats,
    longest_repeated_substring,
    novelty,
    repetition,
    self_bleu,
    simple_tokenize,
    suffix_array,
    summarize,
)
from xuxie.corpus import corpus_from_text, read_corpus
from xuxie.errors import XuxieError

# small alphabets make repeats likely; include a Han character and an astral one (two UTF-16 units)
ALPHABET = "ab红\U00020000"
texts_small = st.text(alphabet=ALPHABET, max_size=60)


# --------------------------------------------------------------------------- tokenising, distinct-n


def test_simple_tokenize_mixed_script():
    assert simple_tokenize("宝玉笑道：“Hello, world 42!”") == ["宝", "玉", "笑", "道", "：", "“", "Hello", ",", "world", "42", "!", "”"]
    assert simple_tokenize("我爱NumPy和 jieba\n") == ["我", "爱", "NumPy", "和", "jieba"]
    assert simple_tokenize("  ") == []


def test_distinct_2_chars_pooled_over_samples():
    # "abab" -> ab ba ab; "abc" -> ab bc: 5 bigrams, distinct {ab, ba, bc} = 3 -> 3/5
    assert distinct_n(["abab", "abc"], 2, unit="char") == pytest.approx(3 / 5)
    # no bigram crosses the boundary between samples: "ba" + "b" would give "ab" only if joined
    assert distinct_n(["a", "b"], 2, unit="char") == 0.0


def test_distinct_tokens_english():
    texts = ["the cat saw the cat", "the dog"]
    # unigrams: the cat saw the cat | the dog = 7, distinct {the, cat, saw, dog} = 4
    assert distinct_n(texts, 1) == pytest.approx(4 / 7)
    # bigrams: (the cat)(cat saw)(saw the)(the cat) | (the dog) = 5, distinct 4
    assert distinct_n(texts, 2) == pytest.approx(4 / 5)


def test_distinct_chinese():
    text = "宝玉笑道：宝玉来了。"
    # tokens = characters: 宝 玉 笑 道 ： 宝 玉 来 了 。 = 10, distinct 8 (宝 and 玉 repeat)
    assert distinct_n([text], 1) == pytest.approx(8 / 10)
    # bigrams: 宝玉 玉笑 笑道 道： ：宝 宝玉 玉来 来了 了。 = 9, distinct 8 (宝玉 twice)
    assert distinct_n([text], 2) == pytest.approx(8 / 9)
    assert distinct_n([text], 2, unit="char") == pytest.approx(8 / 9)  # same here: every char is a token
    # a custom tokenizer: whole string as one token -> one unigram
    assert distinct_n([text, text], 1, tokenize=lambda t: [t]) == pytest.approx(1 / 2)


def test_distinct_errors_and_empty():
    with pytest.raises(XuxieError, match="empty"):
        distinct_n([], 1)
    with pytest.raises(XuxieError, match="not one string"):
        distinct_n("abc", 1)
    with pytest.raises(XuxieError, match="unit"):
        distinct_n(["abc"], 1, unit="word")
    with pytest.raises(XuxieError, match="positive integer"):
        distinct_n(["abc"], 0)
    assert distinct_n(["", "a"], 2, unit="char") == 0.0  # no bigram anywhere
    assert distinct_n(["", "ab"], 2, unit="char") == 1.0


# --------------------------------------------------------------------------- repetition, longest repeat


def test_repetition_exact():
    # 4-grams of abcabcabc: abca bcab cabc abca bcab cabc -> 6, distinct 3 -> 3 repeats / 6
    assert repetition("abcabcabc", 4) == pytest.approx(0.5)
    # 3-grams: abc bca cab abc bca cab abc -> 7, distinct 3 -> 4/7
    assert repetition("abcabcabc", 3) == pytest.approx(4 / 7)
    assert repetition("aaaa", 1) == pytest.approx(3 / 4)
    assert repetition("abcdefg", 4) == 0.0
    assert repetition("abc", 4) == 0.0
    assert repetition("", 4) == 0.0
    # tokens: (the cat)(cat the)(the cat) -> 1 repeat of 3
    assert repetition("the cat the cat", 2, unit="token") == pytest.approx(1 / 3)
    assert repetition("黛玉黛玉黛玉", 2) == pytest.approx(3 / 5)  # 黛玉 玉黛 黛玉 玉黛 黛玉: 2 distinct


def test_longest_repeated_substring_exact():
    assert longest_repeated_substring("banana") == (3, "ana")
    assert longest_repeated_substring("abcabcabc") == (6, "abcabc")  # overlapping occurrences at 0 and 3
    assert longest_repeated_substring("abcd") == (0, "")
    assert longest_repeated_substring("") == (0, "")
    assert longest_repeated_substring("aa") == (1, "a")
    assert longest_repeated_substring("满纸荒唐言，一把辛酸泪！满纸荒唐言") == (5, "满纸荒唐言")
    # tie between "cd" and "ab": the one whose first occurrence is leftmost
    assert longest_repeated_substring("XcdYabZcdWab") == (2, "cd")


def _naive_lrs(s: str) -> tuple[int, str]:
    for length in range(len(s) - 1, 0, -1):
        for start in range(len(s) - length + 1):
            if s.find(s[start:start + length], start + 1) != -1:
                return length, s[start:start + length]
    return 0, ""


@settings(max_examples=200, deadline=None)
@given(texts_small)
def test_longest_repeated_substring_matches_brute_force(s):
    assert longest_repeated_substring(s) == _naive_lrs(s)


# --------------------------------------------------------------------------- suffix array


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET + "c\n ", max_size=120))
def test_suffix_array_matches_naive_sort(s):
    sa = suffix_array(s)
    assert sa.tolist() == sorted(range(len(s)), key=lambda i: s[i:])
    lcp = lcp_array(s, sa)
    for j in range(1, len(s)):
        a, b = s[sa[j - 1]:], s[sa[j]:]
        k = 0
        while k < min(len(a), len(b)) and a[k] == b[k]:
            k += 1
        assert lcp[j] == k


def test_suffix_array_degenerate_and_random():
    for s in ["", "a", "aaaaaaaaaaaaaaaaaaaa", "abababababababab", "ba" * 33 + "a"]:
        assert suffix_array(s).tolist() == sorted(range(len(s)), key=lambda i: s[i:])
    rng = random.Random(0)
    s = "".join(rng.choice("甄士隐贾雨村ab") for _ in range(3000)) * 2  # a 3000-char repeat: 13 doubling rounds
    assert suffix_array(s).tolist() == sorted(range(len(s)), key=lambda i: s[i:])


# --------------------------------------------------------------------------- corpus novelty


def _random_letters(rng: random.Random, n: int, alphabet: str) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_planted_copy_found_with_exact_length_and_positions():
    rng = random.Random(7)
    corpus = _random_letters(rng, 20_000, "abcdefghijklmnopqrstuvwxyz")
    span = corpus[12_345:12_345 + 37]
    # the filler uses other characters, so the copy cannot extend by chance on either side
    sample = _random_letters(rng, 30, "ABCDEFGHIJ") + span + _random_letters(rng, 40, "0123456789")
    index = CorpusIndex(corpus)
    assert index.longest_copy(sample) == (37, 30, 12_345)
    lengths, positions = index.matching_statistics(sample)
    assert lengths[30] == 37 and positions[30] == 12_345
    assert lengths[:30].max() == 0 and lengths[67:].max() == 0
    assert list(lengths[30:67]) == list(range(37, 0, -1))  # the suffixes of the span
    # 8-grams: 30 + 37 + 40 - 8 + 1 = 100 in all; those inside the span: 37 - 8 + 1 = 30
    assert index.ngram_overlap(sample, 8) == pytest.approx(30 / 100)


def test_longest_copy_reports_first_corpus_occurrence_and_leftmost_sample_start():
    index = CorpusIndex("xabcyabcz")
    assert index.longest_copy("abc") == (3, 0, 1)
    assert index.longest_copy("QQbcyQ") == (3, 2, 2)
    assert index.longest_copy("zabcQabcy") == (4, 5, 1)  # "abcy"; "zabc" is not in the corpus
    assert index.longest_copy("xabcQabcy") == (4, 0, 0)  # "xabc" and "abcy" tie: leftmost in the sample
    assert index.longest_copy("") == (0, 0, 0)
    assert index.longest_copy("QQ") == (0, 0, 0)


def test_ngram_overlap_exact_small():
    index = CorpusIndex("abcdefgh")
    # 3-grams of "abcdxyz": abc bcd cdx dxy xyz -> abc, bcd in the corpus -> 2/5
    assert index.ngram_overlap("abcdxyz", 3) == pytest.approx(2 / 5)
    assert index.ngram_overlap("ab", 3) == 0.0
    assert index.ngram_overlap("defgh", 3) == 1.0
    # "zfgh": zfg fgh -> 1/2; longest copies: "abcd" = 4, "fgh" = 3
    out = novelty(["abcdxyz", "zfgh"], index, n=3)
    assert out == pytest.approx({"ngram3_in_corpus": (0.4 + 0.5) / 2, "longest_copy_mean": 3.5, "longest_copy_max": 4.0})


def _brute_matching_statistics(corpus: str, sample: str) -> list[int]:
    out = []
    for i in range(len(sample)):
        length = 0
        while i + length < len(sample) and sample[i:i + length + 1] in corpus:
            length += 1
        out.append(length)
    return out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc红", min_size=1, max_size=80), st.text(alphabet="abcd红", max_size=30), st.integers(1, 5))
def test_matching_statistics_match_brute_force(corpus, sample, n):
    index = CorpusIndex(corpus)
    lengths, positions = index.matching_statistics(sample)
    expected = _brute_matching_statistics(corpus, sample)
    assert lengths.tolist() == expected
    for i, (length, pos) in enumerate(zip(lengths.tolist(), positions.tolist())):
        if length:
            assert corpus[pos:pos + length] == sample[i:i + length]
        else:
            assert pos == -1
    # longest copy: leftmost longest, first corpus occurrence
    best = max(expected, default=0)
    if best:
        s = expected.index(best)
        assert index.longest_copy(sample) == (best, s, corpus.find(sample[s:s + best]))
    else:
        assert index.longest_copy(sample) == (0, 0, 0)
    grams = [sample[i:i + n] for i in range(len(sample) - n + 1)]
    want = sum(g in corpus for g in grams) / len(grams) if grams else 0.0
    assert index.ngram_overlap(sample, n) == pytest.approx(want)


def test_corpus_index_on_hongloumeng():
    text = read_corpus("hongloumeng").text
    index = CorpusIndex(text)
    assert len(index) == len(text) > 800_000
    span = text[400_000:400_120]
    length, s, c = index.longest_copy("“" + "Q" * 5 + span + "Z")
    assert (length, s) == (120, 6)
    assert text[c:c + 120] == span and c <= 400_000
    # 宝玉 appears in the novel; a Latin sample shares nothing
    assert index.ngram_overlap("宝玉", 2) == 1.0
    assert index.ngram_overlap("xyzzy plugh", 3) == 0.0


def test_corpus_index_input_errors():
    with pytest.raises(XuxieError, match="empty corpus"):
        CorpusIndex("")
    with pytest.raises(XuxieError, match="string"):
        CorpusIndex(["abc"])
    assert len(CorpusIndex(corpus_from_text("abc\n\ndef"))) == len("abc\n\ndef")
    with pytest.raises(XuxieError, match="CorpusIndex"):
        novelty(["abc"], "abc")
    with pytest.raises(XuxieError, match="empty"):
        novelty([], CorpusIndex("abc"))


# --------------------------------------------------------------------------- self-BLEU


def test_self_bleu_identical_and_disjoint():
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(100.0)
    assert self_bleu(["满纸荒唐言，一把辛酸泪。"] * 2) == pytest.approx(100.0)
    assert self_bleu(["aaa bbb ccc ddd", "eee fff ggg hhh"]) == pytest.approx(0.0, abs=1e-9)
    assert self_bleu(["宝钗笑道", "黛玉哭了"]) == pytest.approx(0.0, abs=1e-9)
    assert self_bleu(["", "abc"]) == 0.0


def test_self_bleu_equals_sacrebleu_against_all_others():
    rng = random.Random(3)
    text = read_corpus("hongloumeng").text[:50_000]
    for k in (2, 3, 7):
        for _ in range(4):
            texts = []
            for _ in range(k):
                p = rng.randrange(len(text) - 80)
                texts.append(text[p:p + rng.randint(1, 60)])
            texts[-1] = texts[0][: len(texts[0]) // 2] + texts[-1]  # some shared n-grams
            expected = np.mean([sacrebleu.sentence_bleu(t, texts[:i] + texts[i + 1:], tokenize="zh").score
                                for i, t in enumerate(texts)])
            assert self_bleu(texts) == pytest.approx(expected, abs=1e-9)
    english = ["The cat sat on the mat.", "A cat sat on a hat.", "The dog sat on the mat, too.", "Nothing else."]
    for tok in ("13a", "char"):
        expected = np.mean([sacrebleu.sentence_bleu(t, english[:i] + english[i + 1:], tokenize=tok).score
                            for i, t in enumerate(english)])
        assert self_bleu(english, tok) == pytest.approx(expected, abs=1e-9)
    # a callable tokenizer: list() splits into characters, as sacrebleu's "char" does
    assert self_bleu(english, list) == pytest.approx(self_bleu(english, "char"))


def test_self_bleu_errors():
    with pytest.raises(XuxieError, match="at least 2"):
        self_bleu(["only one"])
    with pytest.raises(XuxieError, match="tokenizer"):
        self_bleu(["a b", "c d"], "no-such-tokenizer")


# --------------------------------------------------------------------------- lengths, summary


def test_length_stats_exact():
    # chars 2, 4, 5; tokens: "ab" 1, "abcd" 1, "宝玉 hi" = 宝 玉 hi = 3
    out = length_stats(["ab", "abcd", "宝玉 hi"])
    assert out == pytest.approx({
        "length_mean": 11 / 3, "length_median": 4.0, "length_min": 2.0, "length_max": 5.0,
        "tokens_mean": 5 / 3, "tokens_median": 1.0, "tokens_min": 1.0, "tokens_max": 3.0,
    })
    assert length_stats([""])["length_max"] == 0.0
    with pytest.raises(XuxieError):
        length_stats([])


def test_summarize_flat_dict_of_floats():
    index = CorpusIndex("甄士隐梦幻识通灵，贾雨村风尘怀闺秀。" * 3)
    texts = ["甄士隐梦幻识通灵，哈哈哈哈哈哈哈哈", "贾雨村风尘怀闺秀。The end."]
    out = summarize(texts, index)
    for key in ("n_samples", "distinct_1_char", "distinct_2_token", "repetition_4", "longest_repeat_mean", "longest_repeat_max",
                "self_bleu", "length_mean", "tokens_max", "ngram8_in_corpus", "longest_copy_mean", "longest_copy_max"):
        assert key in out
    assert all(type(v) is float for v in out.values())
    assert out["n_samples"] == 2.0
    assert out["longest_copy_max"] == 9.0  # 甄士隐梦幻识通灵， and 贾雨村风尘怀闺秀。
    assert out["longest_repeat_max"] == 7.0  # 哈 x 8: "哈哈哈哈哈哈哈" at 0 and 1
    single = summarize(["hello world"])
    assert "self_bleu" not in single and "ngram8_in_corpus" not in single
    with pytest.raises(XuxieError, match="empty"):
        summarize([])


def test_corpus_index_pickles():
    import pickle

    index = pickle.loads(pickle.dumps(CorpusIndex("xabcyabcz")))
    assert index.longest_copy("QabcyQ") == (4, 1, 1)
