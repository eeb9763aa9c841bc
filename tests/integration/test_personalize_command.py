"""``forwarder personalize`` as a real child process against the sandbox's personalization service."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import orjson

from forwarder.sandbox import RunningSandbox
from forwarder.sandbox.config import DEV_API_KEY, DEV_TOKEN

from .p13n_support import control, event


async def _personalize(config: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "TD_API_KEY": DEV_API_KEY, "TD_WP13N_TOKEN": DEV_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "forwarder",
        "personalize",
        "--config",
        str(config),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_one_call_printed_as_a_table_or_json_and_errors_exit_non_zero(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    config = tmp_path / "forwarder.toml"
    config.write_text(
        "[[personalization.services]]\n"
        'name = "recs"\nparent_segment_id = "394649"\n'
        f'url = "{sandbox.url}"\ntriggers = ["product_view"]\n'
    )
    views = [event("product_view", "dora", product=p) for p in ("sku-00007", "sku-00008")]
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        response = await http.post(
            "/clickstream/product_view",
            content=orjson.dumps({"events": views}),
            headers={
                "Authorization": f"TD1 {DEV_API_KEY}",
                "WP13n-Token": DEV_TOKEN,
                "Content-Type": "application/vnd.treasuredata.v1+json",
            },
        )
        assert response.status_code == 204

    code, out, err = await _personalize(config, "--service", "recs", "--user-id", "dora")
    assert code == 0, err
    assert "section" in out and "default" in out
    assert any(
        line.startswith("outputs.viewed_products_30d") and line.endswith("sku-00008, sku-00007")
        for line in out.splitlines()
    )

    code, out, _ = await _personalize(
        config,
        "--service",
        "recs",
        "--user-id",
        "dora",
        "--test",
        "--context",
        "page_url=/p",
        "--json",
    )
    assert code == 0
    answer = orjson.loads(out)
    assert answer["user_id"] == "dora" and "processing_time_ms" in answer

    await control(sandbox.url, api_key="1/other")
    code, out, err = await _personalize(config, "--service", "recs", "--user-id", "dora")
    assert code == 1 and not out
    assert "HTTP 401" in err and "API key" in err
    await control(sandbox.url, api_key=None, faults={"errors": [{"status": 503, "rate": 1.0}]})
    code, _, err = await _personalize(config, "--service", "recs", "--user-id", "dora")
    assert code == 1 and "HTTP 503" in err and "Retry-After" in err

    code, _, err = await _personalize(config, "--service", "nope", "--user-id", "dora")
    assert code == 2 and "--service" in err and "recs" in err
