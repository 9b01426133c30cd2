#!/usr/bin/env python3
"""Follow lob-rtrl's predictions from Python: the standard library for REST, python3-websockets
(Debian's package; `pip install websockets` elsewhere) for the stream.

    python3 examples/python/stream_client.py --url http://127.0.0.1:8080 --symbol BTCUSDT --count 10

Prints each prediction as one JSON line: ts, mid and every model's P(up), then exits.
Message shapes: GET /v1/asyncapi.json on the service.
"""
import argparse
import asyncio
import json
import sys
import urllib.request

import websockets


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


async def follow(base_url, symbol, count):
    running = [s["stream"] for s in get_json(f"{base_url}/v1/symbols")["symbols"]]
    print(json.dumps({"running": running}), flush=True)
    stream_url = base_url.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/stream"
    async with websockets.connect(stream_url) as socket:
        await socket.send(json.dumps({"subscribe": [symbol]}))
        seen = 0
        async for frame in socket:
            message = json.loads(frame)
            if message["type"] == "error":
                raise SystemExit(f"refused: {message['reason']}: {message['detail']}")
            if message["type"] == "subscriptions":
                print(json.dumps({"subscribed": message["symbols"]}), flush=True)
                continue
            if message["type"] != "prediction":
                continue
            up = {m["model"]: m["probs"].get("up") for m in message["models"]}
            print(json.dumps({"symbol": message["symbol"], "seq": message["seq"], "ts": message["ts"], "mid": message["mid"], "up": up}), flush=True)
            seen += 1
            if seen >= count:
                return


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the service's base URL")
    parser.add_argument("--symbol", required=True)
    parser.add_argument("--count", type=int, default=10, help="predictions to print before exiting")
    args = parser.parse_args()
    try:
        asyncio.run(follow(args.url.rstrip("/"), args.symbol, args.count))
    except OSError as error:
        print(f"cannot reach {args.url}: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
