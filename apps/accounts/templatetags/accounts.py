"""Account pages' words: the sessions list names browsers as people know them."""

from django import template

from apps.accounts import user_agents

register = template.Library()


@register.filter
def browser_name(user_agent: str | None) -> str:
    return user_agents.browser_name(user_agent or "")
