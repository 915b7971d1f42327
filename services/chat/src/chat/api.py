from typing import Annotated

from common.security import CurrentUser
from common.streaming import EventStreamResponse
from fastapi import APIRouter, Depends, Header, Request

from chat.schemas import ChatRequest
from chat.service import ChatService

router = APIRouter(tags=["chat"])


def _service(request: Request) -> ChatService:
    service: ChatService = request.app.state.chat_service
    return service


Chat = Annotated[ChatService, Depends(_service)]


@router.post(
    "/stream_chat",
    response_class=EventStreamResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE, see docs/api.md"}},
)
async def stream_chat(
    body: ChatRequest,
    user: CurrentUser,
    chat: Chat,
    authorization: Annotated[str, Header()],
) -> EventStreamResponse:
    """Stream the persona's reply as Server-Sent Events: thread, deltas, done (or error)."""
    turn = await chat.start_turn(user, body, authorization)
    return EventStreamResponse(chat.stream_turn(turn), headers={"x-thread-id": turn.thread.id})
