"""The AG2 side of bench/compare: the same two-agent conversation as the
mozaiks benchmark workflows (`Bench`, `BenchTools`), with AG2's documented
two-agent API (`ConversableAgent.initiate_chat`, a tool registered with
`register_function`), against the same fake OpenAI-compatible server.

Driven by host/benches/e2e (its --compare mode), one JSON line per step on
stdout; it waits for a line on stdin after each, so that the driver can
take the fake's recorded requests of that step (and replay those of an
overhead chat) before the next one starts.

Usage: ag2_chats.py BASE_URL CONFIG_JSON
CONFIG_JSON: {"max_turns": {"text": N, "tools": M}, "warmup": W,
              "measured": K, "concurrency": [1, 10, 100]}
"""

import json
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated

from autogen import ConversableAgent, register_function

# What the fake answers with text (host/benches/common/fake_llm_process.rs).
REPLY_TEXT = "Noted. Here is my contribution to the discussion, in one sentence."
INITIAL_MESSAGE = "Discuss the plan, one sentence each."


def echo(text: Annotated[str, "the text to return"]) -> str:
    """Returns its arguments, like planner's echo."""
    return json.dumps({"text": text})


def make_agents(base_url, tools):
    llm_config = {
        # A model AG2 has prices for: with an unknown one it logs a warning on
        # every call, which mozaiks does not do either.
        "config_list": [{"model": "gpt-4o-mini", "base_url": base_url, "api_key": "bench"}],
        # No response cache: every turn asks the model, as mozaiks does.
        "cache_seed": None,
    }
    alpha = ConversableAgent(
        "Alpha",
        system_message="You are Alpha. Add one idea per turn.",
        llm_config=llm_config,
        human_input_mode="NEVER",
    )
    beta = ConversableAgent(
        "Beta",
        system_message="You are Beta. Improve the last idea.",
        llm_config=llm_config,
        human_input_mode="NEVER",
    )
    if tools:
        # Each agent may call the tool; the other one runs it (AG2's
        # caller/executor split), so one tool turn is: the caller's LLM call
        # asking for echo, the executor's tool run, the caller's LLM call
        # answering with text, as in mozaiks's BenchTools.
        register_function(echo, caller=alpha, executor=beta, description="Returns its arguments.")
        register_function(echo, caller=beta, executor=alpha, description="Returns its arguments.")
    return alpha, beta


def run_chat(base_url, tools, max_turns):
    """One chat; returns (wall seconds, agent turns answered with text)."""
    alpha, beta = make_agents(base_url, tools)
    started = time.perf_counter()
    result = alpha.initiate_chat(beta, message=INITIAL_MESSAGE, max_turns=max_turns, silent=True)
    wall = time.perf_counter() - started
    turns = sum(1 for m in result.chat_history if m.get("content") == REPLY_TEXT)
    return wall, turns


# The driver reads steps from the real stdout; AG2's console output (it
# prints every tool execution even with silent=True) goes to /dev/null, the
# cheapest place a default AG2 can print to.
PROTOCOL = os.fdopen(os.dup(1), "w")
sys.stdout = open(os.devnull, "w")


def emit(record):
    """Prints one step and waits until the driver has taken the fake's
    recorded requests (a line on stdin)."""
    PROTOCOL.write(json.dumps(record) + "\n")
    PROTOCOL.flush()
    sys.stdin.readline()


def main():
    base_url, config = sys.argv[1], json.loads(sys.argv[2])
    # Time to the first answered chat: one agent's first answer.
    alpha, beta = make_agents(base_url, False)
    alpha.initiate_chat(beta, message=INITIAL_MESSAGE, max_turns=1, silent=True)
    emit({"phase": "first_answer", "epoch": time.time()})

    for mode in ("text", "tools"):
        tools = mode == "tools"
        max_turns = config["max_turns"][mode]
        for index in range(config["warmup"] + config["measured"]):
            wall, turns = run_chat(base_url, tools, max_turns)
            emit({"phase": "overhead", "mode": mode, "warmup": index < config["warmup"],
                  "wall": wall, "turns": turns})
        for chats in config["concurrency"]:
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=chats) as pool:
                done = list(pool.map(lambda _: run_chat(base_url, tools, max_turns), range(chats)))
            elapsed = time.perf_counter() - started
            emit({"phase": "throughput", "mode": mode, "chats": chats, "elapsed": elapsed,
                  "turns": sum(t for _, t in done), "walls": [w for w, _ in done]})
    emit({"phase": "done", "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})


if __name__ == "__main__":
    main()
