from fastapi import APIRouter, Depends

from cockpit.console.pages import account, audit, auth, dashboard, tokens
from cockpit.console.web import verify_csrf

router = APIRouter(include_in_schema=False, dependencies=[Depends(verify_csrf)])
for module in (auth, dashboard, tokens, audit, account):
    router.include_router(module.router)
