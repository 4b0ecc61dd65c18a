"""The model contract (ps_plugin.structures): query-conditioned search is checked by its protocol,
and the contract keys are written once, as constants."""
import re
from pathlib import Path

import pytest
import torch
from test_spnet_model import tiny_spnet_cfg

from ps_plugin import structures
from ps_plugin.evaluation import is_query_conditioned, query_centric_inference
from ps_plugin.structures import QueryConditionedSearch, missing_query_conditioned_members

ROOT = Path(__file__).resolve().parents[1]


def _spnet(mode):
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    return build_model(tiny_spnet_cfg(mode)).eval()


class _Wrapped(torch.nn.Module):
    """Stands in for DistributedDataParallel: the model sits in `.module`."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_spnet_implements_query_conditioned_search():
    qc, oc = _spnet("qc"), _spnet("oc")
    assert isinstance(qc, QueryConditionedSearch)
    assert missing_query_conditioned_members(qc) == []
    assert is_query_conditioned(qc) and is_query_conditioned(_Wrapped(qc))
    assert not is_query_conditioned(oc)


class _ClaimsWithoutDetect:
    """Says it is query-conditioned but has only half of the protocol."""

    query_conditioned = True

    def encode_queries(self, query_input):
        return torch.zeros(1, 4), torch.zeros(1, 1)


def test_a_model_claiming_query_conditioned_search_without_its_methods_is_refused():
    model = _ClaimsWithoutDetect()
    assert missing_query_conditioned_members(model) == ["detect_for_queries"]
    with pytest.raises(TypeError, match=r"_ClaimsWithoutDetect .*lacks detect_for_queries of .*QueryConditionedSearch"):
        is_query_conditioned(model)
    with pytest.raises(TypeError, match=r"_ClaimsWithoutDetect .*lacks detect_for_queries of"):
        query_centric_inference(_Wrapped(model), data_loader=[], evaluator=None)


def test_a_model_not_claiming_query_conditioned_search_needs_none_of_it():
    assert not is_query_conditioned(torch.nn.Linear(1, 1))
    assert missing_query_conditioned_members(object()) == ["detect_for_queries", "encode_queries", "query_conditioned"]


def _contract_keys():
    return sorted(v for k, v in vars(structures).items() if k.isupper() and isinstance(v, str))


def test_contract_keys_are_written_only_in_structures():
    """No module of ps_plugin/ or tools/ spells a contract key as a string literal ("query_boxes"):
    each uses the constant, so renaming a key is one edit."""
    keys = _contract_keys()
    assert {"query_boxes", "gt_boxes_for_reid", "query_embeddings", "gt_embeddings", "views"} <= set(keys)
    literal = re.compile(r"""(["'])(%s)\1""" % "|".join(map(re.escape, keys)))
    definition = (ROOT / "ps_plugin" / "structures.py").resolve()
    sources = sorted((ROOT / "ps_plugin").rglob("*.py")) + sorted((ROOT / "tools").rglob("*.py"))
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources if path.resolve() != definition
        for number, line in enumerate(path.read_text().splitlines(), 1) if literal.search(line)
    ]
    assert not offenders, "use the ps_plugin.structures constants:\n" + "\n".join(offenders)
