import json
import pytest
from django.urls import reverse
from bibliotheca.models import Collection
from tests.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

def test_probe(client):
    c = Collection.objects.create(name="A", library_id="l", account_id="a", account_key="sekrit-key")
    staff_client(client, "v", [("bibliotheca", "view_collection")])
    r = client.get(reverse("admin:bibliotheca_collection_change", args=[c.pk]))
    print("view-only shows key:", b"sekrit-key" in r.content)
    for q in ("account_key__startswith=sek", "account_key__startswith=zzz"):
        r = client.get(reverse("admin:bibliotheca_collection_changelist") + "?" + q)
        print(q, r.status_code, b">A<" in r.content or b"/A/" in r.content, r.content.count(b"A</a>"))

def test_probe_json():
    from django import forms
    from exchanges.admin import ExchangeForm
    f = forms.JSONField()
    for v in ["[" + "9"*5000 + "]", "[" * 100000]:
        try:
            f.clean(v)
        except forms.ValidationError as e:
            print("VE", e.messages)
        except Exception as e:
            print("EXC", type(e).__name__, str(e)[:80])
