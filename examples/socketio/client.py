"""A Socket.IO client for the chat of app.py: it joins a room, says one line,
and prints what the room says until its own line comes back.

With the server running, ``python client.py Ada lobby "hello, all"``;
``--url`` names another server than http://127.0.0.1:8000.
"""

import argparse
import sys

import socketio  # type: ignore[import-untyped]

TIMEOUT = 5.0  # seconds, for each step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name")
    parser.add_argument("room")
    parser.add_argument("text")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    with socketio.SimpleClient() as client:
        client.connect(args.url, wait_timeout=TIMEOUT)
        # call() waits for the server's acknowledgement: here, who is in the room.
        members = client.call("join", {"name": args.name, "room": args.room}, timeout=TIMEOUT)
        if members is None:  # refused: the reason follows, as an event
            _, refusal = client.receive(timeout=TIMEOUT)
            sys.exit(f"cannot join: {refusal['reason']}")
        print(f"in {args.room}: {', '.join(members)}")
        client.emit("say", args.text)
        while True:
            event, data = client.receive(timeout=TIMEOUT)
            if event == "refused":
                sys.exit(f"refused {data['event']}: {data['reason']}")
            elif event == "said":
                print(f"{data['name']}: {data['text']}")
                if data == {"name": args.name, "text": args.text.strip()}:
                    return
            else:
                print(f"{data['name']} {event}")


if __name__ == "__main__":
    main()
