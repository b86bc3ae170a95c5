import pytest

from apps.jobs.links import check_share_link, parse_pasted_links

GOOD = "https://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f"
OTHER = "https://sora.chatgpt.com/p/s_0123456789abcdef0123456789abcdef"


def test_a_public_share_link_is_accepted_as_is():
    assert check_share_link(GOOD) == (GOOD, "")


def test_a_share_token_in_the_query_is_kept():
    assert check_share_link(GOOD + "?psh=HXVzZXItM") == (GOOD + "?psh=HXVzZXItM", "")


def test_the_fragment_is_dropped_and_host_case_normalised():
    assert (
        check_share_link("https://SORA.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f#x")[0]
        == GOOD
    )


def test_a_link_pasted_without_scheme_gets_https():
    assert check_share_link(GOOD.removeprefix("https://"))[0] == GOOD


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("http://sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f", "start with https://"),
        ("https://sora.chatgpt.com/d/gen_01k6abcdef", "draft link"),
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "not a Sora link"),
        (
            "https://sora.chatgpt.com.evil.example/p/s_68e83bd7eee88191be79d2ba7158516f",
            "look-alike",
        ),
        ("https://sora-chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f", "look-alike"),
        ("https://sora.chatgpt.com/p/s_68e83bd7", "32 letters and digits"),
        ("https://sora.chatgpt.com/explore", "not a video share link"),
        ("https://user@sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f", "unusual form"),
        ("https://sora.chatgpt.com:8443/p/s_68e83bd7eee88191be79d2ba7158516f", "unusual form"),
        (GOOD + " " + OTHER, "spaces inside"),
        (GOOD + "?" + "a" * 500, "longer than 500"),
        ("just-some-words", "not a web address"),
        ("javascript:alert(1)", "not a web address"),
    ],
)
def test_unusable_lines_are_explained_in_plain_words(line, says):
    link, message = check_share_link(line)

    assert link == ""
    assert says in message


def test_a_paste_keeps_good_lines_reports_bad_ones_and_collapses_duplicates():
    text = f"\n  {GOOD}  \nhttps://sora.chatgpt.com/d/gen_1\n{GOOD}\n\n{OTHER}\n{GOOD}#again\n"

    result = parse_pasted_links(text)

    assert result.links == [GOOD, OTHER]
    assert [(error.number, error.text) for error in result.errors] == [
        (3, "https://sora.chatgpt.com/d/gen_1")
    ]
    assert [(line.number, line.message) for line in result.duplicates] == [
        (4, "The same video as line 2: it is sent once."),
        (7, "The same video as line 2: it is sent once."),
    ]


def test_a_share_link_with_an_uppercase_id_is_accepted_in_lowercase():
    link, problem = check_share_link(GOOD.upper())

    assert (link, problem) == (GOOD, "")


def test_an_uppercase_copy_of_a_pasted_link_is_the_same_video():
    result = parse_pasted_links(f"{GOOD}\n{GOOD.replace('s_', 'S_').upper()}\n")

    assert result.links == [GOOD]
    assert [line.number for line in result.duplicates] == [2]


def test_windows_line_endings_are_fine():
    assert parse_pasted_links(f"{GOOD}\r\n{OTHER}\r\n").links == [GOOD, OTHER]


def test_a_link_that_grows_past_500_characters_when_completed_is_refused():
    line = "sora.chatgpt.com/p/s_68e83bd7eee88191be79d2ba7158516f?psh=" + "a" * 442

    assert len(line) == 500
    link, message = check_share_link(line)
    assert link == ""
    assert "over 500 characters" in message


@pytest.mark.parametrize(
    "line",
    [
        GOOD + "/",
        GOOD + "?utm_source=share&ref=x",
        GOOD + "/#comments",
        "SORA.ChatGPT.com/p/s_68e83bd7eee88191be79d2ba7158516f/",
    ],
)
def test_slashes_tracking_parameters_and_fragments_are_dropped(line):
    assert check_share_link(line) == (GOOD, "")


def test_the_share_token_is_kept_and_the_rest_of_the_query_dropped():
    assert check_share_link(GOOD + "?utm_medium=x&psh=HXVzZXItM")[0] == GOOD + "?psh=HXVzZXItM"


def test_a_link_with_and_without_its_share_token_is_one_video():
    result = parse_pasted_links(f"{GOOD}?psh=HXVzZXItM\n{GOOD}/\n")

    assert result.links == [GOOD + "?psh=HXVzZXItM"]
    assert [line.number for line in result.duplicates] == [2]
