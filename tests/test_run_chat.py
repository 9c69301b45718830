"""mobq run / chat: sampling, the thinking split, KV-cache reuse across turns, context accounting."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mobq.cli import cli
from mobq.errors import InputError
from mobq.run import (
    ContextFull,
    Conversation,
    Detokenizer,
    Sampling,
    ThinkSplitter,
    _common_prefix,
    sample,
)


def invoke(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--quiet", *args], input=input)
    return result.exit_code, result.output


# ---------------------------------------------------------------- sampling


def test_temperature_zero_is_greedy() -> None:
    logits = torch.tensor([0.1, 3.0, 0.2, 2.9])
    assert sample(logits, Sampling(), Sampling().generator()) == 1


def test_small_top_p_keeps_only_the_most_likely_token() -> None:
    logits = torch.tensor([0.0, 5.0, 4.9, 0.0])
    sampling = Sampling(temperature=1.0, top_p=0.01, seed=0)
    generator = sampling.generator()
    assert {sample(logits, sampling, generator) for _ in range(50)} == {1}


def test_top_p_samples_only_inside_the_nucleus() -> None:
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    sampling = Sampling(temperature=1.0, top_p=0.8, seed=1)
    generator = sampling.generator()
    drawn = {sample(logits, sampling, generator) for _ in range(300)}
    assert drawn == {0, 1}


def test_a_seed_makes_sampling_repeatable() -> None:
    logits = torch.randn(100, generator=torch.Generator().manual_seed(0))
    draw = lambda s: [sample(logits, s, g) for g in [s.generator()] for _ in range(20)]  # noqa: E731
    assert draw(Sampling(1.0, 0.9, seed=7)) == draw(Sampling(1.0, 0.9, seed=7))
    assert draw(Sampling(1.0, 0.9, seed=7)) != draw(Sampling(1.0, 0.9, seed=8))


@pytest.mark.parametrize(
    "kwargs, message", [({"temperature": -1}, "--temperature"), ({"top_p": 0}, "--top-p")]
)
def test_bad_sampling_options_are_input_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Sampling(**kwargs)


# ---------------------------------------------------------------- streaming text


def _split(pieces: list[str]) -> tuple[dict[str, str], list[str]]:
    kinds: list[str] = []
    splitter = ThinkSplitter("<think>", "</think>", lambda kind, text: kinds.append(kind))
    for piece in pieces:
        splitter.feed(piece)
    splitter.close()
    return splitter.parts, kinds


@pytest.mark.parametrize("size", [1, 2, 3, 5, 100])
def test_thinking_is_split_from_the_answer_at_any_chunking(size: int) -> None:
    text = "<think>\nthe user greets me</think>\n\nHello there!"
    parts, kinds = _split([text[i : i + size] for i in range(0, len(text), size)])
    assert parts == {"think": "\nthe user greets me", "answer": "Hello there!"}
    assert kinds.index("answer") > kinds.index("think")


def test_text_without_a_think_block_is_all_answer() -> None:
    parts, _ = _split(["<th", "ink is a word", " here"])
    assert parts == {"think": "", "answer": "<think is a word here"}


def test_an_unfinished_think_block_stays_thinking() -> None:
    parts, _ = _split(["<think>still going </thi"])
    assert parts == {"think": "still going </thi", "answer": ""}


class _BytesTokenizer:
    """Decodes ids as UTF-8 bytes, like byte-level BPE pieces."""

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def test_detokenizer_holds_back_half_a_character() -> None:
    detok = Detokenizer(_BytesTokenizer())
    out = [detok.push(b) for b in "né€".encode()]
    assert "".join(out) + detok.flush() == "né€"
    assert "\ufffd" not in "".join(out)


def test_common_prefix() -> None:
    assert _common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert _common_prefix([], [1]) == 0


# ---------------------------------------------------------------- a conversation on a real .pte


def test_reply_accounts_for_the_context(export_tied_8da4w) -> None:
    out, manifest = export_tied_8da4w
    conversation = Conversation(out, sampling=Sampling(), think=False)
    reply = conversation.send("Hello, who are you?", max_new_tokens=8)
    assert reply.tokens > 0
    assert reply.context_size == manifest.runtime.max_context_len
    assert reply.context_used == reply.prompt_tokens + reply.tokens
    assert reply.stop in ("eos", "max_new_tokens")


def test_second_turn_reuses_the_cache_and_matches_a_fresh_prefill(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    chat = Conversation(out, think=False)
    first = chat.send("Tell me about rivers.", max_new_tokens=6)
    second = chat.send("And lakes?", max_new_tokens=6)
    full = len(chat.prompt_ids("x"))
    assert second.prompt_tokens < full  # only the part the cache lacked was prefilled
    # The same history prefilled from scratch gives the same greedy answer.
    fresh = Conversation(out, think=False, session=chat.session)
    fresh.session.rewind(0)
    fresh.history = [("user", "Tell me about rivers."), ("assistant", first.answer)]
    assert fresh.send("And lakes?", max_new_tokens=6).answer == second.answer


def test_seeded_sampling_repeats_through_the_program(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    sampling = Sampling(temperature=1.0, top_p=0.9, seed=11)
    answers = [
        Conversation(out, sampling=sampling, raw=True).send("The river", max_new_tokens=12).answer
        for _ in range(2)
    ]
    assert answers[0] == answers[1]


def test_generation_stops_when_the_context_is_full(export_tied_8da4w) -> None:
    out, manifest = export_tied_8da4w
    chat = Conversation(out, raw=True)
    chat.eos = set()  # a random model may emit eos early; this test is about the window
    reply = chat.send("The river", max_new_tokens=10_000)
    assert reply.stop == "context_full"
    assert reply.context_used == manifest.runtime.max_context_len
    with pytest.raises(ContextFull, match="context window holds"):
        chat.send("more", max_new_tokens=4)
    chat.reset()
    assert chat.used() == 0
    assert chat.send("more", max_new_tokens=2).tokens > 0


# ---------------------------------------------------------------- the commands


def test_run_json(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke(
        "run", str(out), "-p", "Hi", "--max-new-tokens", "5", "--seed", "1", "--json"
    )
    assert code == 0, output
    data = json.loads(output)
    assert data["tokens"] > 0 and data["context_size"] == 96
    assert set(data) >= {"answer", "thinking", "stop", "decode_tokens_per_sec"}


def test_run_streams_text_and_a_status_line(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("run", str(out), "-p", "Hi", "--max-new-tokens", "4", "--no-think")
    assert code == 0, output
    assert "prompt tokens" in output and "context" in output


def test_stock_runner_refuses_options_it_cannot_honour(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("run", str(out), "-p", "Hi", "--stock-runner", "--seed", "1")
    assert code == 2
    assert "--stock-runner cannot honour" in output


def test_stock_runner_generates(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke(
        "run", str(out), "-p", "Hi", "--stock-runner", "--max-new-tokens", "4", "--json"
    )
    assert code == 0, output
    assert json.loads(output)["stats"]["prompt_tokens"] > 0


def test_chat_keeps_turns_resets_and_leaves(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke(
        "chat",
        str(out),
        "--max-new-tokens",
        "4",
        input="Hello\nHow are you?\n/reset\nAgain\n/exit\n",
    )
    assert code == 0, output
    assert output.count("you> ") == 5
    assert "conversation cleared" in output
    assert output.count("prompt tokens") == 3


def test_chat_says_when_the_context_is_full(export_tied_8da4w) -> None:
    out, _ = export_tied_8da4w
    code, output = invoke("chat", str(out), input="word " * 200 + "\n")
    assert code == 0, output  # the chat goes on; end of input leaves
    assert "context window full" in output


def test_run_missing_export_is_a_one_line_error(tmp_path) -> None:
    code, output = invoke("run", str(tmp_path / "nothing"), "-p", "Hi")
    assert code == 2
    assert "no manifest" in output
