"""An outsider gets 404 on every route that names a team's thing, walked from the URL resolver.

The walk fills each route with the real ids of another team's things (its team, members,
invitations, jobs, uploads, webhook endpoints and deliveries, API keys) and asks as a person
signed in to a team of their own: GET and POST, with that team's ids and with the outsider's own
team in front of the other team's thing. Every answer must be 404 (405 where the route does not
take the method): not 403, which says the thing exists, nor a redirect to sign in. The same
requests made by the owning team (in a savepoint, rolled back) must not be 404, which proves the
ids reach real things and the 404 comes from the team check. A route whose keywords the walk
cannot fill fails the test, so no new route goes untested.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import HttpResponseBase
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from apps.accounts.models import Membership, OwnershipOffer, Team, User
from apps.api.keys import create_key
from apps.billing import ledger
from apps.billing.models import TopUp, TopUpStatus
from apps.jobs.models import Upload
from apps.webhooks.models import Delivery
from tests.factories import make_endpoint, make_invitation, make_team
from tests.stack import VIDEO, finished_job

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_storage")]

METHODS = ("get", "post")
# Keywords that name no team's thing, and why the walk leaves them alone.
NOT_A_TEAMS_THING = {
    "token": "a link's secret (invitation, provider callback, original, API result): whoever "
    "holds it may use it, by design",
    "provider": "which provider calls back (with a token)",
    "key": "allauth's email confirmation and password reset keys",
    "uidb36": "allauth's password reset: the person, with a key",
    "pk": "allauth's security keys: looked up among the signed-in person's own",
    "rest": "the API's catch-all, which answers 404 to everyone",
}
# The thing each keyword names; `public_id` is a job's or an upload's, by the segment before it.
THINGS = {
    "team_id": "team",
    "membership_id": "membership",
    "invitation_id": "invitation",
    "endpoint_id": "endpoint",
    "delivery_id": "delivery",
    "key_id": "api_key",
    "job_id": "job",
}
PUBLIC_IDS = {"jobs": "job", "uploads": "upload"}
# Not an id: which of a job's two posters (both exist on the other team's job).
CHOICES = {"which": "result"}
# Things a route names in its query string, which the resolver does not show.
QUERIES = {"billing:success": ("session_id", "checkout_session")}
# Routes that are 404 to everyone without S3 storage, so the owning team cannot show here that
# the ids are real (tests/jobs/test_uploads_s3.py asks them as an outsider with a bucket).
ONLY_WITH_A_BUCKET = {"jobs:upload_presign", "jobs:upload_confirm"}
KEYWORD = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>")


@dataclass
class Route:
    path: str  # as the resolver spells it: "t/<uuid:team_id>/jobs/<uuid:public_id>/"
    name: str

    @property
    def keywords(self) -> list[str]:
        return [a or b for a, b in KEYWORD.findall(self.path)]

    @property
    def is_api(self) -> bool:
        return self.path.startswith("api/v1/")

    def thing(self, keyword: str) -> str | None:
        """What the other team's thing behind `keyword` is, or None if the walk cannot say."""
        if keyword == "public_id":
            before = re.search(r"(\w+)/<uuid:public_id>", self.path)
            return PUBLIC_IDS.get(before.group(1)) if before else None
        return THINGS.get(keyword)


def app_routes() -> Iterator[Route]:
    """Every route (the admin's aside: staff only, and Django's own)."""

    def walk(patterns: list, prefix: str, namespace: str) -> Iterator[Route]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.app_name != "admin":
                    inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                    yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                yield Route(prefix + str(pattern.pattern), f"{namespace}{pattern.name}")

    yield from walk(get_resolver().url_patterns, "", "")


def teams_routes() -> list[Route]:
    return [r for r in app_routes() if any(k not in NOT_A_TEAMS_THING for k in r.keywords)]


@dataclass
class World:
    """Acme's things (Alice owns it, Bob is an admin) and Charlie, an outsider in his own team."""

    ids: dict[str, str]
    insiders: list[Client]
    outsider: Client
    outsiders_team: Team
    api_insider: Client
    api_outsider: Client

    def path(self, route: Route, *, team: Team | None = None) -> str:
        def fill(match: re.Match[str]) -> str:
            keyword = match.group(1) or match.group(2)
            if keyword in CHOICES:
                return CHOICES[keyword]
            if keyword == "team_id" and team is not None:
                return str(team.public_id)
            thing = route.thing(keyword)
            if thing is None:
                raise LookupError(f"{route.path}: which team's thing is {keyword}?")
            return self.ids[thing]

        path = "/" + KEYWORD.sub(fill, route.path).removeprefix("^").removesuffix("$")
        if route.name in QUERIES:
            name, thing = QUERIES[route.name]
            path += f"?{name}={self.ids[thing]}"
        return path


def _stored(name: str) -> str:
    return default_storage.save(name, ContentFile(VIDEO))


def _membership(user: User, team: Team) -> Membership:
    return Membership.objects.select_related("team", "user").get(user=user, team=team)


def _signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _bearer(user: User, team: Team) -> Client:
    _, raw_key = create_key(membership=_membership(user, team), name="walk", read_only=False)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")


@pytest.fixture
def world(alice: User, bob: User, carol: User, charlie: User, acme: Team) -> World:
    ledger.grant(team=acme, credits=100, key="walk", memo="the walk's job")
    job = finished_job(_membership(alice, acme))
    # Every file a job's pages serve exists, so the owning team gets each of them.
    job.original_file.name = _stored("originals/walk.mp4")
    job.original_poster.name = _stored("posters/original.jpg")
    job.result_poster.name = _stored("posters/result.jpg")
    job.save(update_fields=["original_file", "original_poster", "result_poster"])
    upload = Upload.objects.create(
        team=acme, created_by=alice, file=_stored("uploads/walk.mp4"), name="walk.mp4",
        size=len(VIDEO), sha256="u" * 64,
    )  # fmt: skip
    endpoint = make_endpoint(acme, "https://hooks.example/acme")
    delivery = Delivery.objects.create(endpoint=endpoint, event_type="job.failed", payload={})
    topup = TopUp.objects.create(
        team=acme, created_by=alice, credits=100, amount_cents=500, status=TopUpStatus.PAID,
        checkout_session_id="cs_walk",
    )  # fmt: skip
    key, _ = create_key(membership=_membership(alice, acme), name="Acme's CI", read_only=False)
    # Bob is offered the ownership, so its pages have something to show him.
    OwnershipOffer.objects.create(
        team=acme, offered_by=_membership(alice, acme), offered_to=_membership(bob, acme)
    )
    invitation = make_invitation(acme, "dave@example.com", invited_by=alice)
    outsiders_team = make_team("Outsiders", owner=charlie)
    return World(
        ids={
            "team": str(acme.public_id),
            "membership": str(_membership(carol, acme).pk),
            "invitation": str(invitation.pk),
            "endpoint": str(endpoint.public_id),
            "delivery": str(delivery.pk),
            "api_key": str(key.pk),
            "job": str(job.public_id),
            "upload": str(upload.public_id),
            "checkout_session": topup.checkout_session_id,
        },
        insiders=[_signed_in(alice), _signed_in(bob)],
        outsider=_signed_in(charlie),
        outsiders_team=outsiders_team,
        api_insider=_bearer(alice, acme),
        api_outsider=_bearer(charlie, outsiders_team),
    )


def ask(client: Client, method: str, path: str) -> HttpResponseBase:
    if method == "post" and path.startswith("/api/"):
        return client.post(path, "{}", content_type="application/json")
    # The pages read forms: an empty one, since the team check comes first.
    return getattr(client, method)(path)


def as_insider(clients: list[Client], method: str, path: str) -> int:
    """The owning team's answer: the first not 404 (Bob, say, is the one offered the
    ownership). Each is asked in a savepoint rolled back, so deleting the team leaves the world."""
    status = 404
    for client in clients:
        with transaction.atomic():
            status = ask(client, method, path).status_code
            transaction.set_rollback(True)
        if status != 404:
            break
    return status


def test_the_walk_can_fill_every_route_that_names_a_teams_thing() -> None:
    unfillable = [
        f"{route.path} ({keyword})"
        for route in teams_routes()
        for keyword in route.keywords
        if keyword not in NOT_A_TEAMS_THING
        and keyword not in CHOICES
        and (keyword != "team_id" and route.thing(keyword) is None)
    ]
    assert unfillable == [], "say which team's thing these name (THINGS / PUBLIC_IDS)"


def test_an_outsider_gets_404_on_every_route_that_names_a_teams_thing(world: World) -> None:
    routes = teams_routes()
    # 49 when this was written: a walk that finds far fewer has stopped walking the resolver.
    assert len(routes) >= 40
    wrong: list[str] = []
    for route in routes:
        insiders = [world.api_insider] if route.is_api else world.insiders
        outsider = world.api_outsider if route.is_api else world.outsider
        paths = [world.path(route)]
        if "team_id" in route.keywords and len(route.keywords) > 1:
            # The outsider's own team in front of the other team's thing.
            paths.append(world.path(route, team=world.outsiders_team))
        taken = 0
        for method in METHODS:
            owner_answer = as_insider(insiders, method, paths[0])
            if owner_answer == 404 and route.name not in ONLY_WITH_A_BUCKET:
                wrong.append(f"{method.upper()} {route.path}: the owning team gets 404 too")
            taken += owner_answer != 405
            for path in paths:
                status = ask(outsider, method, path).status_code
                if status != 404 and not (status == 405 == owner_answer):
                    wrong.append(f"{method.upper()} {path} ({route.name}): {status}")
        if not taken:
            wrong.append(f"{route.path}: takes neither GET nor POST; the walk asks nothing")
    assert not wrong, "\n".join(wrong)
