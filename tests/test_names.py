"""Name rules and derived keys/subjects (SPEC §2): what a user's code and the wire rely on."""

from __future__ import annotations

import pytest

from dynamo_nb import InvalidNameError, InvalidReferenceError, names


def test_spec_table_of_derived_names():
    lease = 0x1A2B3C4D
    assert names.component_etcd_path("dynamo", "processor") == "dynamo/components/processor"
    assert names.component_service_name("dynamo", "processor") == "dynamo|processor"
    assert names.component_path("dynamo", "processor") == "dynamo/processor"
    assert names.instance_key("dynamo", "processor", "generate", lease) == "dynamo/components/processor/generate:1a2b3c4d"
    assert names.endpoint_subject("dynamo", "processor", "generate", lease) == "dynamo|processor.generate-1a2b3c4d"
    assert names.component_event_subject("dynamo", "processor", "kv_events") == "namespace.dynamo.component.processor.kv_events"
    assert names.namespace_event_subject("dynamo", "kv_events") == "namespace.dynamo.kv_events"
    assert names.service_slug("dynamo", "processor") == "dynamo_processor"


@pytest.mark.parametrize("good", ["production", "dev-1", "a_b", "0"])
def test_good_namespaces(good):
    assert names.validate_namespace(good) == good


@pytest.mark.parametrize("bad,char", [("Production", "P"), ("a.b", "."), ("a/b", "/"), ("a b", " "), ("ns|x", "|"), ("dév", "é")])
def test_bad_namespace_names_the_character_and_the_rule(bad, char):
    with pytest.raises(InvalidNameError) as info:
        names.validate_namespace(bad)
    err = info.value
    assert isinstance(err, ValueError)
    assert (err.kind, err.value, err.bad_char) == ("namespace", bad, char)
    text = str(err)
    assert "namespace" in text and repr(bad) in text and repr(char) in text and "a-z 0-9 - _" in text


@pytest.mark.parametrize("good", ["Processor", "VllmWorker", "worker-2", "a_b"])
def test_good_components(good):
    assert names.validate_component(good) == good


@pytest.mark.parametrize("bad,char", [("Vllm.Worker", "."), ("a/b", "/"), ("a*", "*"), ("x>", ">")])
def test_bad_components(bad, char):
    with pytest.raises(InvalidNameError) as info:
        names.validate_component(bad)
    assert info.value.kind == "component" and info.value.bad_char == char
    assert "A-Z a-z 0-9 - _" in str(info.value)


@pytest.mark.parametrize("good", ["generate", "chat/completions", "v1/chat/completions", "Gen-2_x"])
def test_good_endpoints(good):
    assert names.validate_endpoint(good) == good


@pytest.mark.parametrize("bad,char", [("chat.completions", "."), ("gen:1", ":"), ("a b", " "), ("/lead", "/"), ("trail/", "/"), ("a//b", "/")])
def test_bad_endpoints(bad, char):
    with pytest.raises(InvalidNameError) as info:
        names.validate_endpoint(bad)
    assert info.value.kind == "endpoint" and info.value.bad_char == char


@pytest.mark.parametrize("validate", [names.validate_namespace, names.validate_component, names.validate_endpoint])
def test_empty_and_non_str_names(validate):
    with pytest.raises(InvalidNameError, match="empty"):
        validate("")
    with pytest.raises(InvalidNameError, match="must be a str"):
        validate(42)


def test_reference_form():
    ref = names.parse_endpoint_ref("dynamo.Processor.chat/completions")
    assert (ref.namespace, ref.component, ref.endpoint) == ("dynamo", "Processor", "chat/completions")
    assert str(ref) == "dynamo.Processor.chat/completions"
    assert names.parse_endpoint_ref("dyn://dynamo.backend.generate").component == "backend"


@pytest.mark.parametrize("bad", ["dynamo.Processor", "dynamo", "..x", "dynamo..generate", ""])
def test_malformed_references(bad):
    with pytest.raises(InvalidReferenceError, match="namespace.Component.endpoint"):
        names.parse_endpoint_ref(bad)


def test_reference_parts_are_validated():
    with pytest.raises(InvalidNameError) as info:
        names.parse_endpoint_ref("Dynamo.Processor.generate")
    assert info.value.kind == "namespace"
    with pytest.raises(InvalidNameError) as info:
        names.parse_endpoint_ref("dynamo.Processor.chat.completions")
    assert info.value.kind == "endpoint" and info.value.bad_char == "."


def test_parse_instance_key_round_trip():
    key = names.instance_key("dynamo", "Processor", "chat/completions", 0xABC)
    assert names.parse_instance_key("dynamo/components/Processor", key) == ("chat/completions", 0xABC)
    assert names.parse_instance_key("dynamo/components/Processor", "dynamo/components/Processor/junk") is None
    assert names.parse_instance_key("dynamo/components/Other", key) is None
