from minict.registry.challenge import parse_challenges


def test_challenge_bearer_with_params():
    header = 'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull"'
    assert parse_challenges(header) == [
        ("bearer", {"realm": "https://auth.example.com/token", "service": "registry.example.com",
                    "scope": "repository:a/b:pull"}),
    ]


def test_challenge_basic():
    assert parse_challenges('Basic realm="oci-testbed"') == [("basic", {"realm": "oci-testbed"})]


def test_challenge_several_schemes():
    header = 'Bearer realm="https://a/token", scope="x", Basic realm="y"'
    assert parse_challenges(header) == [("bearer", {"realm": "https://a/token", "scope": "x"}),
                                        ("basic", {"realm": "y"})]


def test_challenge_unquoted_and_escaped_values():
    header = 'Bearer realm=https://a/t, error=invalid_token, error_description="say \\"hi\\""'
    assert parse_challenges(header) == [
        ("bearer", {"realm": "https://a/t", "error": "invalid_token", "error_description": 'say "hi"'}),
    ]


def test_challenge_empty_header():
    assert parse_challenges("") == []
