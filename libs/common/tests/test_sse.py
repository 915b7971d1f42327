from common.sse import SSEEvent, SSEParser, encode_event


def test_events_survive_arbitrary_chunking() -> None:
    stream = (
        encode_event("thread", {"thread_id": "t1"})
        + encode_event("delta", {"text": "héllo\nworld"})
        + encode_event("done", {"usage": {"input_tokens": 3, "output_tokens": 2}})
    )
    for size in (1, 2, 7, len(stream)):
        parser = SSEParser()
        events = [e for i in range(0, len(stream), size) for e in parser.feed(stream[i : i + size])]
        assert events == [
            SSEEvent("thread", {"thread_id": "t1"}),
            SSEEvent("delta", {"text": "héllo\nworld"}),
            SSEEvent("done", {"usage": {"input_tokens": 3, "output_tokens": 2}}),
        ]


def test_parser_accepts_crlf_and_default_event_name() -> None:
    events = list(SSEParser().feed(b'data: {"a": 1}\r\n\r\n'))
    assert events == [SSEEvent("message", {"a": 1})]
