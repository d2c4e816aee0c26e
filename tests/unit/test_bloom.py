"""Keyed Bloom-filter encodings: determinism under a key, unrelatedness across keys, Dice behaviour
on typos, identical encodings from Python and Spark, identical Dice decisions on DuckDB and Spark,
recorded parameters without key material, and no name in any written artefact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ig_policies.errors import ConfigError
from ig_policies.master_secret import MasterSecret
from ig_policies.workspace import write_json
from linkage import bloom
from linkage.identifiable import bloom_encoder
from tests.conftest import TEST_MASTER_SECRET

pytestmark = pytest.mark.spark

SECRET = MasterSecret(bytes.fromhex(TEST_MASTER_SECRET))
PROJECT = "ehl-lcr-demo"
SETTINGS = bloom.BloomSettings()
NAMES = ["JONATHAN", "JONATHON", "SMITH", "SMYTH", "QUIXLEYVANTABLACK", "L8 1AB", "L8 1AD", "ZOE", None, ""]


def _encoder(field: str = "bf_forename", version: int = 1, **kw) -> bloom_encoder.BloomEncoder:
    key = bloom_encoder.field_key(SECRET, field, PROJECT, version)
    params = {
        "hashes": SETTINGS.fields[field].hashes,
        "bits": SETTINGS.bits,
        "padding": "_",
        "fold": True,
        **kw,
    }
    return bloom_encoder.BloomEncoder(key, **params)


def test_same_value_same_key_encodes_identically_and_half_the_bits_are_set():
    enc = _encoder()
    a, b = bloom_encoder.encode_values(["JONATHAN", "JONATHAN"], enc)
    assert a is not None and b is not None
    assert a.dtype == np.int64 and len(a) == SETTINGS.words
    assert np.array_equal(a, b)
    assert np.array_equal(a, bloom_encoder.encode_values(["JONATHAN"], _encoder())[0])  # a fresh encoder too
    assert 0.3 <= bloom.popcount(a) / SETTINGS.bits <= 0.6


@pytest.mark.parametrize(
    "other",
    [
        {"field": "bf_surname"},  # another field's key
        {"version": 2},  # a rotated key
    ],
)
def test_another_key_gives_an_unrelated_encoding(other):
    values = ["JONATHAN", "SMITH", "QUIXLEYVANTABLACK", "MARGARET"]
    mine = bloom_encoder.encode_values(values, _encoder())
    theirs = bloom_encoder.encode_values(values, _encoder(**other))
    for a, b in zip(mine, theirs, strict=True):
        assert not np.array_equal(a, b)
        # about what two unrelated random half-full filters share, far below a typo's similarity
        assert bloom.dice(a, b) < 0.7


def test_dice_is_one_for_a_value_with_itself_and_high_for_a_one_letter_typo():
    enc = _encoder()
    jonathan, jonathon, smith, quix = bloom_encoder.encode_values(
        ["JONATHAN", "JONATHON", "SMITH", "QUIXLEY"], enc
    )
    assert bloom.dice(jonathan, jonathan) == 1.0
    typo = bloom.dice(jonathan, jonathon)
    assert typo >= 0.75
    assert typo > bloom.dice(jonathan, smith) + 0.2
    assert typo > bloom.dice(jonathan, quix) + 0.2
    assert bloom.dice(jonathan, None) is None


def test_missing_values_have_no_encoding_and_other_characters_still_encode():
    out = bloom_encoder.encode_values([None, "", "ZOË", float("nan")], _encoder())
    assert out[0] is None and out[1] is None and out[3] is None
    assert out[2] is not None and bloom.popcount(out[2]) > 0


def test_folding_costs_little_separation_on_planted_typos():
    """Hardening's accuracy cost, on a planted truth: typo pairs still separate from unrelated ones."""
    rng = np.random.default_rng(4)
    letters = np.array(list("ABCDEFGHIJKLMNOPRSTUVWY"))
    words = ["".join(rng.choice(letters, int(rng.integers(5, 9)))) for _ in range(300)]
    typos = [w[:2] + ("X" if w[2] != "X" else "Q") + w[3:] for w in words]
    shuffled = words[1:] + words[:1]
    for fold in (True, False):
        enc = _encoder(fold=fold)
        base, typo, other = (bloom_encoder.encode_values(v, enc) for v in (words, typos, shuffled))
        typo_dice = np.array([bloom.dice(a, b) for a, b in zip(base, typo, strict=True)])
        other_dice = np.array([bloom.dice(a, b) for a, b in zip(base, other, strict=True)])
        assert np.quantile(typo_dice, 0.1) > np.quantile(other_dice, 0.99), fold


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ -", min_size=1, max_size=20), min_size=1, max_size=6
    )
)
def test_batch_encoding_equals_one_at_a_time_and_dice_is_symmetric(values):
    """Encoding a batch must not let records bleed into each other (the bigram bookkeeping)."""
    enc = _encoder()
    batch = bloom_encoder.encode_values(values, enc)
    for value, encoded in zip(values, batch, strict=True):
        assert np.array_equal(encoded, bloom_encoder.encode_values([value], enc)[0])
    a, b = batch[0], batch[-1]
    assert bloom.dice(a, b) == bloom.dice(b, a)
    assert 0.0 <= bloom.dice(a, b) <= 1.0


def test_settings_record_parameters_and_refuse_bad_values():
    meta = bloom.BloomSettings().metadata()
    assert meta["bits"] == 128 and meta["fold"] is True
    assert meta["fields"]["bf_surname"] == {"source": "std_surname", "hashes": 10}
    assert meta["key_purposes"]["bf_forename"] == "bloom/bf_forename"
    with pytest.raises(ValidationError, match="multiple of 64"):
        bloom.BloomSettings(bits=100)
    with pytest.raises(ValidationError, match="padding"):
        bloom.BloomSettings(padding="A")
    with pytest.raises(ValidationError, match="bf_"):
        bloom.BloomSettings(fields={"forename": bloom.BloomField(source="std_forename", hashes=5)})
    assert "redacted" in repr(_encoder())


def test_each_encoding_reads_its_own_field_unless_told_and_an_unknown_source_is_refused():
    assert SETTINGS.fields["bf_surname"].source == "std_surname"
    told = bloom.BloomSettings(fields={"bf_name": bloom.BloomField(source="std_forename", hashes=5)})
    assert told.fields["bf_name"].source == "std_forename"
    bloom_encoder.check_sources(SETTINGS)
    unknown = bloom.BloomSettings(fields={"bf_shoe_size": bloom.BloomField(hashes=5)})
    assert unknown.fields["bf_shoe_size"].source == "std_shoe_size"
    with pytest.raises(ConfigError, match=r"pseudonymisation\.bloom\.fields\.bf_shoe_size\.source"):
        bloom_encoder.encoders(unknown, SECRET, "p1", 1)


def test_bloom_parameters_come_from_the_settings_file_and_errors_name_the_key(tmp_path):
    from flows.settings import Settings, SettingsError, load_settings

    assert Settings().pseudonymisation.bloom == bloom.BloomSettings()
    f = tmp_path / "settings.yaml"
    f.write_text(
        "pseudonymisation:\n  bloom:\n    bits: 256\n    fold: false\n    fields:\n"
        "      bf_surname: {source: std_surname, hashes: 12}\n"
    )
    chosen = load_settings(f).pseudonymisation.bloom
    assert (chosen.bits, chosen.words, chosen.fold) == (256, 4, False)
    assert chosen.metadata()["fields"] == {"bf_surname": {"source": "std_surname", "hashes": 12}}
    for text, key in (
        ("pseudonymisation:\n  bloom:\n    bits: 100\n", "pseudonymisation.bloom.bits"),
        ("pseudonymisation:\n  bloom:\n    padding: A\n", "pseudonymisation.bloom.padding"),
        ("pseudonymisation:\n  bloom:\n    hashes: 3\n", "pseudonymisation.bloom.hashes"),
        (
            "pseudonymisation:\n  bloom:\n    fields:\n      bf_surname: {source: surname, hashes: 12}\n",
            "pseudonymisation.bloom.fields.bf_surname.source",
        ),
        (
            "pseudonymisation:\n  bloom:\n    fields:\n      bf_surname: {source: std_surname, hashes: 0}\n",
            "pseudonymisation.bloom.fields.bf_surname.hashes",
        ),
    ):
        f.write_text(text)
        with pytest.raises(SettingsError) as exc:
            load_settings(f)
        assert key in str(exc.value), str(exc.value)


# --------------------------------------------------------------------------------------------
# Spark encoding and both SQL backends


@pytest.fixture(scope="module")
def encoded_pairs(spark, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """Pairs of values encoded on Spark (pandas_udf), written as the pseudonymised zone would."""
    from pyspark.sql import functions as F

    pairs = pd.DataFrame(
        {
            "pair": range(7),
            "fn_l": ["JONATHAN", "JONATHAN", "SMITH", "AMY", "QUIXLEYVANTABLACK", "ZOE", "ANN"],
            "fn_r": ["JONATHAN", "JONATHON", "SMYTH", "ZEBEDEE", "QUIXLEY-VANTABLAK", None, "ANNE"],
        }
    )
    enc = _encoder()
    sdf = spark.createDataFrame(pairs)
    sdf = sdf.withColumns(
        {
            "bf_l": bloom_encoder.bloom_column(enc, F.col("fn_l")),
            "bf_r": bloom_encoder.bloom_column(enc, F.col("fn_r")),
        }
    )
    out = tmp_path_factory.mktemp("bloom") / "pairs"
    sdf.select("pair", "bf_l", "bf_r").write.parquet(str(out))
    return out, pairs


def test_spark_encodings_equal_the_python_ones(encoded_pairs):
    path, pairs = encoded_pairs
    written = pd.read_parquet(path).sort_values("pair").reset_index(drop=True)
    enc = _encoder()
    for side in ("l", "r"):
        expected = bloom_encoder.encode_values(pairs[f"fn_{side}"].tolist(), enc)
        for got, want in zip(written[f"bf_{side}"], expected, strict=True):
            if want is None:
                assert got is None
            else:
                assert np.array_equal(np.asarray(got, dtype=np.int64), want)


def _sql_over_pairs(words: int, dialect: str, source: str) -> str:
    select = [
        "pair",
        *bloom.word_select("bf_l", "bf_name_l", words, dialect),
        *bloom.word_select("bf_r", "bf_name_r", words, dialect),
    ]
    # the word columns are named bf_name_l_w0 ...; rename to the <column>_w<i>_<side> layout Splink makes
    renamed = ", ".join(
        [f"bf_name_{side}_w{i} AS bf_name_w{i}_{side}" for side in ("l", "r") for i in range(words)]
    )
    levels = ", ".join(
        f"CASE WHEN {bloom.dice_condition(['bf_name'], words, t)} THEN 1 ELSE 0 END AS at_{int(t * 100)}"
        for t in (0.95, 0.85, 0.75)
    )
    return (
        f"SELECT pair, {bloom.dice_sql(['bf_name'], words)} AS dice, {levels}, "
        f"{bloom.present_condition(['bf_name'])} AS present "
        f"FROM (SELECT pair, {renamed} FROM (SELECT {', '.join(select)} FROM {source}) s) t ORDER BY pair"
    )


def test_duckdb_and_spark_compute_identical_dice_values(encoded_pairs, spark):
    import duckdb

    path, pairs = encoded_pairs
    words = SETTINGS.words
    spark.read.parquet(str(path)).createOrReplaceTempView("bloom_pairs")
    on_spark = spark.sql(_sql_over_pairs(words, "spark", "bloom_pairs")).toPandas()
    con = duckdb.connect()
    source = f"read_parquet('{(path / '*.parquet').as_posix()}')"
    on_duckdb = con.execute(_sql_over_pairs(words, "duckdb", source)).df()
    assert len(on_spark) == len(on_duckdb) == len(pairs)
    pd.testing.assert_series_equal(on_spark["dice"], on_duckdb["dice"], check_dtype=False)
    for level in ("at_95", "at_85", "at_75"):
        assert on_spark[level].tolist() == on_duckdb[level].tolist(), level
    # and both equal the Python reference
    enc = _encoder()
    for i, row in pairs.iterrows():
        a, b = bloom_encoder.encode_values([row["fn_l"], row["fn_r"]], enc)
        expected = bloom.dice(a, b)
        if expected is None:
            assert pd.isna(on_duckdb.loc[i, "dice"]) and not on_duckdb.loc[i, "present"]
        else:
            assert on_duckdb.loc[i, "dice"] == pytest.approx(expected, abs=1e-12)
            assert bool(on_spark.loc[i, "at_75"]) == (round(200 * expected / 2, 9) >= 75)
    assert on_duckdb.loc[0, "dice"] == 1.0 and on_duckdb.loc[0, "at_95"] == 1
    assert on_duckdb.loc[1, "at_75"] == 1  # JONATHAN / JONATHON


def test_canary_scan_of_written_encodings_and_parameters(encoded_pairs, tmp_path):
    """The encodings and their recorded parameters hold no name (in any case) and no key."""
    path, pairs = encoded_pairs
    write_json(tmp_path / "_ehl_metadata.json", {"bloom": SETTINGS.metadata()})
    key = bloom_encoder.field_key(SECRET, "bf_forename", PROJECT, 1)
    canaries = {v.lower() for v in pd.concat([pairs["fn_l"], pairs["fn_r"]]).dropna() if len(v) >= 5}
    canaries |= {key.hex(), TEST_MASTER_SECRET}
    files = [p for p in path.rglob("*") if p.is_file()] + [tmp_path / "_ehl_metadata.json"]
    import pyarrow.parquet as pq

    for file in files:
        text = file.read_bytes().decode("latin-1").lower()
        if file.suffix == ".parquet":
            text += json.dumps(pq.read_table(file).to_pylist(), default=str).lower()
        assert not [c for c in canaries if c in text], file.name


def test_dice_levels_follow_the_exact_token_level_and_blocking_is_unchanged():
    from linkage import splink_model

    base = splink_model.token_comparisons()
    model = splink_model.with_dice_levels(base, SETTINGS.words)
    by_name = {c["output_column_name"]: c for c in model}
    labels = [lv["label_for_charts"] for lv in by_name["name"]["comparison_levels"]]
    assert labels[:4] == ["missing", "exact", "names Dice >= 0.85", "names Dice >= 0.70"]
    # every token level decides before the "one name similar" level, which comes just before "different"
    token_labels = [lv["label_for_charts"] for lv in base[1]["comparison_levels"]]
    assert labels[4:-2] == token_labels[2:-1]
    assert labels[-2:] == ["one name Dice >= 0.70", "different"]
    one = by_name["name"]["comparison_levels"][-2]["sql_condition"]
    assert " OR " in one and "bf_forename_w1_l" in one and "bf_surname_w0_r" in one
    postcode = [lv["label_for_charts"] for lv in by_name["postcode"]["comparison_levels"]]
    assert postcode[:3] == ["missing", "exact", "postcode Dice >= 0.80"]
    assert by_name["date_of_birth"] == {c["output_column_name"]: c for c in base}["date_of_birth"]
    assert "bf_" not in json.dumps(splink_model.PREDICTION_BLOCKING_RULES)
    condition = by_name["name"]["comparison_levels"][2]["sql_condition"]
    assert "bf_forename_w0_l & bf_forename_w0_r" in condition and "bf_surname_w1_r" in condition


def test_words_per_encoding_are_read_from_the_metadata_or_the_data(encoded_pairs, tmp_path):
    import shutil

    path, _ = encoded_pairs
    table = tmp_path / "table"
    shutil.copytree(path, table)
    assert bloom.table_words(table) is None  # no bf_ columns of the known names
    frame = pd.read_parquet(path).rename(columns={"bf_l": "bf_forename"})
    table2 = tmp_path / "table2"
    table2.mkdir()
    frame.to_parquet(table2 / "part-0.parquet")
    assert bloom.table_words(table2) == SETTINGS.words
    write_json(table2 / bloom.METADATA_FILE, {"bloom": {"words": 7}})
    assert bloom.table_words(table2) == 7


# --------------------------------------------------------------------------------------------
# Integration: the pseudonymisation stage writes the encodings, the link model compares them


@pytest.fixture
def pseudonymised(pseudonymised_run):
    """The pseudonymisation tests' run (``tests/unit/conftest.py``): default Bloom settings."""
    return pseudonymised_run.workspace, pseudonymised_run.result


def test_stage_writes_encodings_and_records_their_parameters(pseudonymised):
    ws, result = pseudonymised
    emp = pd.read_parquet(result.outputs["employment_support"])
    demo = pd.read_parquet(result.outputs["health_demographics"])
    for table in (emp, demo):
        assert set(bloom.ENCODING_COLUMNS) <= set(table.columns)
    for name in ("health_conditions", "health_activity"):
        assert not any(c.startswith("bf_") for c in pd.read_parquet(result.outputs[name]).columns)
    meta = json.loads((result.outputs["employment_support"] / bloom.METADATA_FILE).read_text())
    assert meta["bloom"] == SETTINGS.metadata()
    # the canary person: identical encodings in both sources, equal to the Python reference
    client = emp[emp["year_of_birth"] == 1961].iloc[0]
    patient = demo[demo["year_of_birth"] == 1961].iloc[0]
    enc = bloom_encoder.encoders(SETTINGS, SECRET, PROJECT, 1)
    expected = bloom_encoder.encode_values(["QUIXLEYVANTABLACK"], enc["bf_surname"])[0]
    assert np.array_equal(np.asarray(client["bf_surname"], dtype=np.int64), expected)
    assert np.array_equal(np.asarray(patient["bf_surname"], dtype=np.int64), expected)
    assert np.array_equal(np.asarray(client["bf_postcode"]), np.asarray(patient["bf_postcode"]))


def test_canary_scan_of_the_stage_output_including_the_bloom_keys(pseudonymised):
    from tests.unit.test_pseudonymise import _canaries, _text_of

    ws, _ = pseudonymised
    canaries = _canaries() + [bloom_encoder.field_key(SECRET, f, PROJECT, 1).hex() for f in SETTINGS.fields]
    written = [p for zone in ("pseudonymised", "audit") for p in (ws.root / zone).rglob("*") if p.is_file()]
    assert any(p.suffix == ".parquet" for p in written)
    for path in written:
        text = _text_of(path)
        assert not [c for c in canaries if c in text], path.relative_to(ws.root)


def _population_tables(root: Path, errors: dict[str, float] | None = None):
    from tests.unit.test_link_population import make_population, write_workspace_tables

    pop = make_population(3000, 800, seed=5, errors=errors)
    write_workspace_tables(pop, root)
    enc = bloom_encoder.encoders(SETTINGS, SECRET, PROJECT, 1)
    sources = {"bf_forename": "forename", "bf_surname": "surname", "bf_postcode": "postcode"}
    for name, frame in (("employment_support", pop.clients), ("health_demographics", pop.patients)):
        path = root / "pseudonymised" / name / "part-00000.parquet"
        table = pd.read_parquet(path)
        for column, encoder in enc.items():
            table[column] = encoder.encode(frame[sources[column]].astype(object).reset_index(drop=True))
        table.to_parquet(path, index=False)
    return pop


def test_link_model_gains_dice_levels_and_finds_more_typo_pairs(tmp_path):
    """Planted truth: with doubled typo rates the Dice levels link at least as well as tokens alone."""
    import logging

    from linkage import quality, splink_model
    from linkage.link import link_tables
    from linkage.link_backend import duckdb_api
    from linkage.linkage_config import LinkageConfig
    from tests.unit.test_link import _truth

    logging.getLogger("splink").setLevel(logging.ERROR)
    errors = {"forename_typo": 0.12, "surname_typo": 0.08}
    pop = _population_tables(tmp_path, errors)
    truth = _truth(pop)
    with_bloom = link_tables(duckdb_api("1GB", threads=2), tmp_path, LinkageConfig(u_max_pairs=2e5))
    tokens_only = link_tables(
        duckdb_api("1GB", threads=2), tmp_path, LinkageConfig(u_max_pairs=2e5, bloom_levels=False)
    )
    assert splink_model.uses_bloom(with_bloom.model) and not splink_model.uses_bloom(tokens_only.model)
    labels = splink_model.level_labels(with_bloom.model)["name"]
    assert "names Dice >= 0.85" in labels.values()
    f1_bloom = quality.score_links(with_bloom.links, truth)["f1"]
    f1_tokens = quality.score_links(tokens_only.links, truth)["f1"]
    assert f1_bloom >= f1_tokens
    assert f1_bloom > 0.95
    # no encoding word reaches any output of the link stage
    assert not [c for c in with_bloom.candidates.columns if c.startswith("bf_")]
    assert not [c for c in with_bloom.links.columns if c.startswith("bf_")]
    # a saved Dice model cannot be re-used on tables without encodings: a plain input error
    from ig_policies.errors import InputError
    from tests.unit.test_link_population import write_workspace_tables

    plain = tmp_path / "plain"
    write_workspace_tables(pop, plain)
    with pytest.raises(InputError, match="Bloom-filter encodings"):
        link_tables(
            duckdb_api("1GB", threads=2), plain, LinkageConfig(u_max_pairs=2e5), model=with_bloom.model
        )
