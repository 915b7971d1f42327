from typing import Annotated

from common.pagination import Page, PageQuery
from common.security import CurrentUser
from common.streaming import EventStreamResponse
from common.web import from_state
from fastapi import APIRouter, Depends, Header, Path, Query

from chat.schemas import ChatRequest, ThreadOut, Transcript
from chat.service import ChatService

router = APIRouter(tags=["chat"])


Chat = Annotated[ChatService, Depends(from_state("chat_service"))]


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


@router.get("/chat/threads", response_model=Page[ThreadOut])
async def list_threads(
    user: CurrentUser,
    chat: Chat,
    page: PageQuery,
    user_id: Annotated[str | None, Query(max_length=64, description="Managers only")] = None,
    module_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[ThreadOut]:
    """Your threads, newest first. Managers may filter by any user, or by module alone."""
    return await chat.list_threads(user, user_id=user_id, module_id=module_id, page=page)


@router.get("/chat/threads/{thread_id}", response_model=Transcript)
async def get_thread(
    thread_id: Annotated[str, Path(max_length=64)], user: CurrentUser, chat: Chat
) -> Transcript:
    """The transcript: every turn's messages, the replies with their usage."""
    return await chat.transcript(user, thread_id)
