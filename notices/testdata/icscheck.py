#!/usr/bin/python3
"""Parse an iCalendar object from stdin with python3-icalendar (an
implementation independent of ours) and print what the tests check, as JSON."""
import json, sys
from datetime import timezone
from icalendar import Calendar

cal = Calendar.from_ical(sys.stdin.buffer.read())
out = {"method": str(cal.get("method")), "events": [], "timezones": []}
for tz in cal.walk("VTIMEZONE"):
    out["timezones"].append({"tzid": str(tz.get("tzid")),
        "rules": sorted(str(c.get("rrule").to_ical(), "ascii") for c in tz.subcomponents if c.get("rrule"))})
for ev in cal.walk("VEVENT"):
    start, end = ev.decoded("dtstart"), ev.decoded("dtend")
    out["events"].append({
        "uid": str(ev.get("uid")), "sequence": int(ev.get("sequence")),
        "organizer": str(ev.get("organizer")), "attendee": str(ev.get("attendee")),
        "organizer_cn": str(ev.get("organizer").params.get("CN")),
        "start_utc": start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end_utc": end.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start_tzid": str(ev.get("dtstart").params.get("TZID")),
        "location": str(ev.get("location")), "status": str(ev.get("status")),
    })
print(json.dumps(out))
