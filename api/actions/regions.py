"""DescribeRegions: the region(s) this server answers for, as the SDK model reads them (Regions.Region[])."""
from __future__ import annotations

from typing import Any

from api.actions.context import Call
from api.params import optional
from common.settings import Settings

# Local names the cloud uses for the regions of its endpoint list (spec 0), in Chinese and English.
KNOWN_NAMES: dict[str, tuple[str, str]] = {
    "cn-hangzhou": ("华东1（杭州）", "China (Hangzhou)"),
    "cn-shanghai": ("华东2（上海）", "China (Shanghai)"),
    "cn-qingdao": ("华北1（青岛）", "China (Qingdao)"),
    "cn-beijing": ("华北2（北京）", "China (Beijing)"),
    "cn-shenzhen": ("华南1（深圳）", "China (Shenzhen)"),
    "ap-southeast-1": ("新加坡", "Singapore"),
    "us-west-1": ("美国（硅谷）", "US (Silicon Valley)"),
}


def configured_regions(settings: Settings) -> list[tuple[str, str | None]]:
    """(region id, configured local name or None) for each region of the `regions` setting, else `region`."""
    out: list[tuple[str, str | None]] = []
    for item in settings.regions.split(","):
        region, eq, local = item.partition("=")
        if region.strip():
            out.append((region.strip(), local.strip() if eq and local.strip() else None))
    return out or [(settings.region, None)]


def local_name(region: str, configured: str | None, language: str) -> str:
    """The region's display name: the configured one, else the cloud's (zh-CN unless English is asked for), else the id."""
    if configured:
        return configured
    names = KNOWN_NAMES.get(region)
    if names is None:
        return region
    return names[0] if language.lower().startswith("zh") else names[1]


async def describe_regions(call: Call) -> dict[str, Any]:
    """DescribeRegions (AcceptLanguage: zh-CN by default, as the cloud's API; en-US and others get English)."""
    language = optional(call.params, "AcceptLanguage") or "zh-CN"
    endpoint = call.settings.public_endpoint or f"{call.settings.host}:{call.settings.port}"
    regions = [
        {"RegionId": region, "LocalName": local_name(region, name, language), "RegionEndpoint": endpoint}
        for region, name in configured_regions(call.settings)
    ]
    return {"Regions": {"Region": regions}}
