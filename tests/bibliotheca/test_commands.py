"""import_bibliotheca_purchases: bad input exits 2 with one line and writes nothing."""

import pytest
from django.core.management import CommandError, call_command

from jobs.cli.commands import command_user
from jobs.models import JobRun

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = "bibliotheca.import_purchase_records_by_collection"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --import-all or --collection NAME_OR_ID"),
        (
            ["--import-all", "--collection", "Main library"],
            "give either --import-all or --collection, not both",
        ),
        (["--collection", "Nope"], "unknown Bibliotheca collection 'Nope'"),
        (["--collection", "999999"], "unknown Bibliotheca collection '999999'"),
    ],
)
def test_bad_input__one_line_error_exit_2_nothing_queued(collection, args, message):
    with pytest.raises(CommandError) as error:
        call_command("import_bibliotheca_purchases", *args)

    assert (str(error.value), error.value.returncode) == (message, 2)
    assert JobRun.objects.count() == 0


def test_collection_by_name_or_id__queues_one_chain(collection):
    call_command("import_bibliotheca_purchases", "--collection", "Main library")
    call_command(
        "import_bibliotheca_purchases", "--collection", str(collection.pk), "--force-reimport"
    )

    runs = list(JobRun.objects.filter(job=CHAIN).order_by("id"))
    assert [(r.trigger, r.triggered_by, r.kwargs) for r in runs] == [
        ("command", command_user(), {"collection_id": collection.pk, "force_reimport": False}),
        ("command", command_user(), {"collection_id": collection.pk, "force_reimport": True}),
    ]


def test_import_all__fans_out_to_enabled_collections_only(make_collection):
    enabled = make_collection(name="A")
    make_collection(name="B", enabled=False)
    call_command("import_bibliotheca_purchases", "--import-all", "--force-reimport")
    from tests.bibliotheca.conftest import drain

    drain(max_runs=1)

    fan_out = JobRun.objects.get(job="bibliotheca.import_purchase_records_for_all_collections")
    (chain,) = JobRun.objects.filter(job=CHAIN)
    assert fan_out.status == "succeeded" and fan_out.result["queued"] == 1
    assert (chain.trigger, chain.parent_id) == ("chain", fan_out.pk)
    assert chain.kwargs == {"collection_id": enabled.pk, "force_reimport": True}
