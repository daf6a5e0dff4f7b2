"""Calling your served GPT-2 with the `openai` client: a completion, then the same one streamed.

    python steps/gpt2_client.py --model DIR [--port 8000] [--prompt "Hello"]

`--model` is the name the server was started with (the same --model). Nothing here is yours to
write: it is the client side of the serving chapter.
"""

import argparse

from openai import OpenAI


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gpt2")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--prompt", default="Hello")
    args = parser.parse_args(argv)

    client = OpenAI(base_url=f"http://127.0.0.1:{args.port}/v1", api_key="not needed")
    reply = client.completions.create(model=args.model, prompt=args.prompt, max_tokens=20,
                                      temperature=0)  # temperature 0: greedy, as generate()
    print(reply.choices[0].text)
    for chunk in client.completions.create(model=args.model, prompt=args.prompt, max_tokens=20,
                                           temperature=0, stream=True):
        print(chunk.choices[0].text, end="", flush=True)
    print()


if __name__ == "__main__":
    main()
