"""What the providers reached over the internet share: one pooled HTTP client with a bearer
token and explicit timeouts, and — when the app talks to their local simulator instead — a
trusted client for the results the simulator serves on loopback, where no result link may
lead otherwise."""

import httpx

from apps.removal.base import RemovalProvider


class HostedProvider(RemovalProvider):
    def __init__(
        self,
        *,
        token: str,
        base_url: str,
        timeout_seconds: float,
        simulated: bool,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._timeout = httpx.Timeout(timeout_seconds)
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=self._timeout,
            transport=transport,
        )
        self._simulator_results = httpx.Client(timeout=self._timeout) if simulated else None

    def result_client(self, task_id: str) -> httpx.Client | None:
        return self._simulator_results

    def close(self) -> None:
        self._http.close()
        if self._simulator_results is not None:
            self._simulator_results.close()
