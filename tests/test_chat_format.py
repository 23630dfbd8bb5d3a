"""Golden tests of the chat format and its tokenisation (docs/fidelity.md §2; a template mismatch, a double BOS or an
EOS written as text would break a model).

ADELIE trained with open-instruct's Tulu format and transformers' slow LlamaTokenizer: the whole rendered string is
tokenised at once, "</s>" becoming the EOS id, and the loss is masked everywhere except the assistant's content,
its EOS and (for non-final turns) the newline after it. These tests pin down:
  - the rendered strings (written out by hand below),
  - the ids: equal to LlamaTokenizer(path)(rendered)["input_ids"], the independent oracle (transformers 5 dropped
    the slow tokenizer: conftest.SlowLlamaTokenizer writes it from its definition on SentencePiece),
  - the labels: equal to open-instruct's own masking algorithm (re-implemented here on the oracle tokenizer:
    tokenise growing prefixes of the conversation and mask the non-assistant spans),
for single-turn, multi-turn few-shot and system-prompt conversations, with the real LLaMA-2 tokenizer and with the
project's embedded one.
"""
import pytest

import data
import model
from conftest import SlowLlamaTokenizer


def hf_tokenizer(path):
    return SlowLlamaTokenizer(path)  # transformers' slow LlamaTokenizer, legacy=True: what ADELIE tokenised with


def concat_messages(messages):
    """open-instruct's _concat_messages (finetune.py), the reference for the rendering."""
    text = ""
    for m in messages:
        if m["role"] == "system":
            text += "<|system|>\n" + m["content"].strip() + "\n"
        elif m["role"] == "user":
            text += "<|user|>\n" + m["content"].strip() + "\n"
        else:
            text += "<|assistant|>\n" + m["content"].strip() + "</s>" + "\n"
    return text


def open_instruct_labels(hf, messages):
    """open-instruct's encode_with_messages_format: labels = ids, then every non-assistant message (and the
    <|assistant|> tag after it) masked, span ends found by tokenising prefixes of the conversation."""
    ids = hf(concat_messages(messages).strip())["input_ids"]
    labels = list(ids)
    for k, m in enumerate(messages):
        if m["role"] == "assistant":
            continue
        start = 0 if k == 0 else len(hf(concat_messages(messages[:k]))["input_ids"])
        so_far = concat_messages(messages[:k + 1])
        if k < len(messages) - 1 and messages[k + 1]["role"] == "assistant":
            so_far += "<|assistant|>\n"
        end = len(hf(so_far)["input_ids"])
        labels[start:end] = [-100] * (end - start)
    return ids, labels


SINGLE = [{"role": "user", "content": "Find the entities.\n\nText: 'Anna Berg visited Oslo.'"},
          {"role": "assistant", "content": "[Answer]: Anna Berg: Person; Oslo: Location;"}]
SINGLE_TEXT = ("<|user|>\nFind the entities.\n\nText: 'Anna Berg visited Oslo.'\n"
               "<|assistant|>\n[Answer]: Anna Berg: Person; Oslo: Location;</s>")

FEW_SHOT = [{"role": "user", "content": "Find the entities. Entity types: [Person, Location].\n\nText: 'Omar flew.'"},
            {"role": "assistant", "content": "[Answer]: Omar: Person;"},
            {"role": "user", "content": "Text: 'It rained.'"},
            {"role": "assistant", "content": "[Answer]: NA"},
            {"role": "user", "content": "Text: 'Lena Kim met Sam in Lima.'"},
            {"role": "assistant", "content": "  [Answer]: Lena Kim: Person; Sam: Person; Lima: Location;\n"}]
FEW_SHOT_TEXT = ("<|user|>\nFind the entities. Entity types: [Person, Location].\n\nText: 'Omar flew.'\n"
                 "<|assistant|>\n[Answer]: Omar: Person;</s>\n"
                 "<|user|>\nText: 'It rained.'\n"
                 "<|assistant|>\n[Answer]: NA</s>\n"
                 "<|user|>\nText: 'Lena Kim met Sam in Lima.'\n"
                 "<|assistant|>\n[Answer]: Lena Kim: Person; Sam: Person; Lima: Location;</s>")

SYSTEM = [{"role": "system", "content": data.ODIE_SYSTEM},
          {"role": "user", "content": "List each person with their job.\nText: Anna is a nurse. Omar is a chef."},
          {"role": "assistant",
           "content": "[Answer]: | Name | Job |\n| --- | --- |\n| Anna | nurse |\n| Omar | chef |"}]
SYSTEM_TEXT = ("<|system|>\n" + data.ODIE_SYSTEM + "\n"
               "<|user|>\nList each person with their job.\nText: Anna is a nurse. Omar is a chef.\n"
               "<|assistant|>\n[Answer]: | Name | Job |\n| --- | --- |\n| Anna | nurse |\n| Omar | chef |</s>")

CASES = [("single-turn", SINGLE, SINGLE_TEXT), ("few-shot", FEW_SHOT, FEW_SHOT_TEXT), ("system", SYSTEM, SYSTEM_TEXT)]


@pytest.mark.parametrize("name,messages,text", CASES, ids=[c[0] for c in CASES])
def test_rendered_string_is_the_tulu_format(name, messages, text):
    """Per message <|role|>\\n{stripped content}\\n, assistant content followed by </s>, whole text stripped."""
    assert data.render_chat(messages) == text
    assert data.render_chat(messages) == concat_messages(messages).strip()
    assert data.render_chat(messages[:-1], add_generation_prompt=True) == text[:text.rindex("<|assistant|>")] + \
        "<|assistant|>\n"


@pytest.mark.parametrize("name,messages,text", CASES, ids=[c[0] for c in CASES])
def test_ids_and_labels_match_slow_llama_tokenizer_and_open_instruct(name, messages, text, llama_tokenizer_path):
    hf = hf_tokenizer(llama_tokenizer_path)
    ids, labels = data.tokenize_chat(model.Tokenizer(llama_tokenizer_path), messages)
    ref_ids, ref_labels = open_instruct_labels(hf, messages)
    assert ids == hf(text)["input_ids"] == ref_ids
    assert labels == ref_labels


def test_golden_ids_single_turn(llama_tokenizer_path):
    """The exact LLaMA-2 ids of SINGLE (checked once against transformers; kept literally so that the test still
    says what the ids are where transformers is absent)."""
    tok = model.Tokenizer(llama_tokenizer_path)
    ids, labels = data.tokenize_chat(tok, SINGLE)
    pieces = [tok.id_to_piece(i) for i in ids]
    assert ids[0] == 1 and pieces[1:7] == ["▁<", "|", "user", "|", ">", "<0x0A>"]
    assert ids[-1] == 2 and ids.count(2) == 1  # one EOS id, never the pieces of the string "</s>"
    trained = [tok.id_to_piece(i) for i, l in zip(ids, labels) if l != -100]
    assert "".join(trained[:-1]).replace("▁", " ") == "[Answer]: Anna Berg: Person; Oslo: Location;"
    assert trained[-1] == "</s>"


def test_non_final_turns_train_eos_and_the_newline_after_it(llama_tokenizer_path):
    """After each non-final EOS the next stretch starts with SentencePiece's dummy "▁" then the newline: both are
    trained (open-instruct counts them in the assistant span); the <|assistant|> tag is never trained."""
    tok = model.Tokenizer(llama_tokenizer_path)
    ids, labels = data.tokenize_chat(tok, FEW_SHOT)
    eos = [k for k, i in enumerate(ids) if i == tok.eos_id]
    assert len(eos) == 3
    for k in eos[:-1]:
        assert [tok.id_to_piece(i) for i in ids[k + 1:k + 3]] == ["▁", "<0x0A>"]
        assert labels[k:k + 3] == ids[k:k + 3]
        assert labels[k + 3] == -100  # "<" of the next <|user|>
    assert eos[-1] == len(ids) - 1 and labels[-1] == tok.eos_id
    text_trained = "".join(tok.id_to_piece(i) for i, l in zip(ids, labels) if l != -100)
    assert "assistant" not in text_trained and "user" not in text_trained


def test_encode_prompt_is_the_prefix_training_sees(llama_tokenizer_path):
    """Inference prompt = the conversation up to "<|assistant|>\\n"; its ids are exactly the first ids of
    the training sequence, so what the model is asked at inference is what it was trained to continue."""
    tok = model.Tokenizer(llama_tokenizer_path)
    hf = hf_tokenizer(llama_tokenizer_path)
    for messages in (SINGLE, FEW_SHOT, SYSTEM):
        prompt = data.encode_prompt(tok, messages[:-1])
        assert prompt == hf(data.render_chat(messages[:-1], add_generation_prompt=True))["input_ids"]
        ids, labels = data.tokenize_chat(tok, messages)
        assert ids[:len(prompt)] == prompt
        before_ids, before_labels = data.tokenize_chat(tok, messages[:-1])  # the turns before the answer
        assert labels[:len(before_ids)] == before_labels  # (earlier assistant turns are trained, docs/fidelity.md §2)
        assert all(l == -100 for l in labels[len(before_ids):len(prompt)])  # "\n<|assistant|>\n" is not
        assert labels[len(prompt)] != -100  # the answer starts right after the prompt


def test_special_token_strings_inside_content_behave_like_the_slow_tokenizer(llama_tokenizer_path):
    """The slow tokenizer maps the strings <s> and </s> to their ids wherever they occur; ids stay equal to it even
    for such content (and a user's </s> is not trained)."""
    hf = hf_tokenizer(llama_tokenizer_path)
    messages = [{"role": "user", "content": "Is </s> or <s> a tag? Text: 'é 日本'"},
                {"role": "assistant", "content": "Both are tags."}]
    ids, labels = data.tokenize_chat(model.Tokenizer(llama_tokenizer_path), messages)
    assert ids == hf(data.render_chat(messages))["input_ids"]
    assert ids.count(2) == 2 and labels.count(2) == 1


@pytest.mark.parametrize("name,messages,text", CASES, ids=[c[0] for c in CASES])
def test_embedded_tokenizer_matches_slow_llama_tokenizer_too(name, messages, text):
    """The same equalities with the project's own SentencePiece model (no ../shared needed)."""
    hf = hf_tokenizer(data.DEFAULT_TOKENIZER)
    ids, labels = data.tokenize_chat(model.Tokenizer(data.DEFAULT_TOKENIZER), messages)
    assert (ids, labels) == open_instruct_labels(hf, messages)


def test_built_conversations_match_the_oracle(llama_tokenizer_path):
    """Conversations as data.py builds them (few-shot, explanations, JSON, ODIE's system prompt) tokenise to the
    oracle's ids and labels."""
    import random
    import synthetic
    hf = hf_tokenizer(llama_tokenizer_path)
    tok = model.Tokenizer(llama_tokenizer_path)
    records = synthetic.generate_corpus(3, 40, 0)["train"]
    ie, _ = data.ie_instruct(records, data.IEInstructConfig(max_tokens=0), progress=False)
    for conv in random.Random(0).sample(ie, 40):
        assert data.tokenize_chat(tok, conv["messages"]) == open_instruct_labels(hf, conv["messages"])
