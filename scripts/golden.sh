#!/usr/bin/env bash
# Same commands, same seeds → same text: trains five small models (char LSTM, transformer, word,
# seq2seq, lines) and prints generated text and their training previews. Run it before and after a
# refactor and compare the md5 (on one machine: training is deterministic there).
# Usage: bash scripts/golden.sh REPO OUTDIR
set -u
REPO=$(cd "$1" && pwd); OUT=$2; SHARED=$REPO/../shared/corpora; X="$REPO/.venv/bin/python -m xuxie"
export PYTHONPATH=$REPO
W=$(mktemp -d); mkdir -p $OUT
head -c 150000 $SHARED/tinyshakespeare.txt > $W/ts.txt
head -c 200000 $SHARED/hongloumeng.txt > $W/hlm.txt
cd $W
$X train ts.txt --out lstm --steps 60 --hidden-size 64 --preview-length 30 -q --seed 3 2>/dev/null >/dev/null
$X train ts.txt --out tf --arch transformer --steps 40 --preview-length 30 -q --seed 3 2>/dev/null >/dev/null
$X train hlm.txt --out word --tokenizer word --steps 30 --hidden-size 64 --preview-length 10 -q --seed 3 2>/dev/null >/dev/null
$X train hlm.txt --out s2s --arch seq2seq --steps 30 --hidden-size 64 --preview-length 20 -q --seed 3 --max-source-len 64 --max-target-len 64 2>/dev/null >/dev/null
$X train $SHARED/hacker_news_2000.txt --mode lines --out hn --steps 40 --hidden-size 64 -q --seed 3 2>/dev/null >/dev/null
{
for m in lstm tf; do
  echo "== $m sample"; $X generate $m --prompt "ROMEO:" --max-new-tokens 80 --seed 7 -n 2 --temperature 0.8 --top-p 0.9 --top-k 20 --repetition-penalty 1.2 --no-repeat-ngram 3
  echo "== $m beam"; $X generate $m --prompt "KING" --max-new-tokens 40 --num-beams 3 --seed 1
  echo "== $m temps"; $X generate $m --max-new-tokens 40 -n 3 --temperature 1.0,0.5,0.2 --seed 5
  echo "== $m stop"; $X generate $m --prompt "A" --max-new-tokens 100 --stop "." --seed 2
done
echo "== word"; $X generate word --prompt "宝玉" --max-new-tokens 30 --seed 4 -n 2
echo "== hn"; $X generate hn -n 3 --seed 9 --max-new-tokens 60
echo "== s2s"; $X continue s2s --text "宝玉笑道：" --seed 3 --max-new-tokens 40
echo "== s2s beam"; $X continue s2s --text "黛玉" --num-beams 4 --max-new-tokens 30
for m in lstm tf word s2s hn; do echo "== samples.md $m"; cat $m/samples.md | grep -v "^## step"; done
} > $OUT/out.txt 2> $OUT/err.txt
echo "files:"; md5sum $OUT/out.txt
rm -rf $W
