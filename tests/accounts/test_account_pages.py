"""allauth's pages in the product's layout and words (templates/allauth, account, mfa)."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from tests.accounts.helpers import first_match
from tests.factories import PASSWORD, confirm_email

pytestmark = pytest.mark.django_db

SIGNED_OUT_PAGES = {
    "account_login": "Sign in to Unmark",
    "account_signup": "Create your Unmark account",
    "account_reset_password": "Reset your password",
    "account_reset_password_done": "Check your email",
}
SIGNED_IN_PAGES = {
    "account_email": "Email addresses",
    "account_change_password": "Change your password",
    "mfa_index": "Two-factor authentication",
    "usersessions_list": "Signed-in sessions",
    "privacy:my_data": "Download your data",
    "privacy:delete_account": "Delete your account",
}


def test_the_sign_out_page_is_the_products_too(login, alice):
    page = login(alice).get(reverse("account_logout"))

    assert re.search(r"<h1>\s*Sign out\?\s*</h1>", page.text)
    assert 'class="card auth-card"' in page.text


@pytest.mark.parametrize(("name", "heading"), SIGNED_OUT_PAGES.items())
def test_signed_out_pages_use_the_product_layout(client, name, heading):
    page = client.get(reverse(name))

    assert page.status_code == 200
    assert f"<h1>{heading}</h1>" in page.text
    assert 'class="site-header"' in page.text  # the product's frame, not allauth's bare page
    assert 'class="card auth-card"' in page.text


@pytest.mark.parametrize(("name", "heading"), SIGNED_IN_PAGES.items())
def test_account_pages_use_the_account_layout(login, alice, name, heading):
    page = login(alice).get(reverse(name))

    assert page.status_code == 200
    assert re.search(rf"<h1>\s*{heading}\s*</h1>", page.text)
    assert 'aria-label="Account settings"' in page.text


def test_remember_me_is_a_checkbox_with_its_label_beside_it(client):
    page = client.get(reverse("account_login"))

    assert (
        '<p class="checkbox-row"><input type="checkbox" name="remember" id="id_remember"> '
        '<label for="id_remember">Remember me</label>' in page.text
    )


def test_each_address_has_its_own_actions_and_remove_looks_destructive(login, alice):
    confirm_email(alice)
    confirm_email(alice, "alice@work.example", verified=False)

    page = login(alice).get(reverse("account_email")).text

    assert page.count('name="action_remove"') == 1  # never for the primary address
    assert 'class="button button-danger button-small"' in page
    assert 'name="action_send"' in page  # only the unconfirmed one
    assert 'value="alice@work.example"' in page
    assert 'type="radio"' not in page


def test_the_reset_done_page_names_a_real_contact_and_a_way_to_sign_in(client, settings):
    settings.SUPPORT_EMAIL = "help@unmark.example"

    page = client.get(reverse("account_reset_password_done")).text

    assert 'href="mailto:help@unmark.example"' in page
    assert f'href="{reverse("account_login")}"' in page
    assert "contact us" not in page


def test_a_password_reset_ends_on_a_page_with_a_way_to_sign_in(client, alice):
    confirm_email(alice)
    client.post(reverse("account_reset_password"), {"email": alice.email})
    link = first_match(
        r"http://testserver(/accounts/password/reset/key/\S+/)", mail.outbox[-1].body
    )
    form_url = client.get(link)["Location"]

    done = client.post(
        form_url,
        {"password1": "a-brand-new-pass-phrase", "password2": "a-brand-new-pass-phrase"},
        follow=True,
    )

    assert "Your password is changed" in done.text
    assert f'href="{reverse("account_login")}"' in done.text
    assert client.login(email=alice.email, password="a-brand-new-pass-phrase")
    assert not client.login(email=alice.email, password=PASSWORD)
