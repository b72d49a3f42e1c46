"""Lexical similarity for the ``hard`` strategy: TF-IDF vectors built with polars into a scipy sparse matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl
    from scipy.sparse import csr_matrix

# Function words and chat filler: they say nothing about the topic of a dialogue.
_STOPWORDS = """
    a about above after again against all also am an and any are aren as at be because been before being below
    between both but by can cannot could couldn did didn do does doesn doing don down during each even ever few
    for from further get got had hadn has hasn have haven having he her here hers herself him himself his how i
    if im in into is isn it its itself just know let like ll me more most much my myself no nor not now of off
    oh ok okay on once one only or other our ours ourselves out over own re really same she should shouldn so
    some such than that thats the their theirs them themselves then there these they this those through to too
    under until up us ve very was wasn way we well were weren what when where which while who whom why will
    with won would wouldn yeah yes you your yours yourself yourselves
"""
STOPWORDS: frozenset[str] = frozenset(_STOPWORDS.split())


def tfidf_matrix(texts: pl.Series) -> csr_matrix:
    """L2-normalised TF-IDF rows (sublinear tf, smoothed idf) over lower-cased words of two or more letters,
    stop words removed; a row of zeros for a text with no content word."""
    import numpy as np
    import polars as pl
    from scipy.sparse import csr_matrix

    n = len(texts)
    toks = (
        pl.DataFrame({"text": texts})
        .with_row_index("doc")
        .select("doc", tok=pl.col("text").str.to_lowercase().str.extract_all(r"[a-z]{2,}"))
        .explode("tok")
        .drop_nulls("tok")
        .filter(~pl.col("tok").is_in(list(STOPWORDS)))
    )
    tf = toks.group_by(["doc", "tok"]).agg(tf=pl.len())
    terms = tf.group_by("tok").agg(df=pl.len()).sort("tok").with_row_index("term")
    w = tf.join(terms, on="tok").with_columns(
        w=(1.0 + pl.col("tf").cast(pl.Float64).log())
        * (((1.0 + n) / (1.0 + pl.col("df").cast(pl.Float64))).log() + 1.0)
    )
    w = w.with_columns(w=pl.col("w") / (pl.col("w") ** 2).sum().over("doc").sqrt()).sort(["doc", "term"])
    return csr_matrix(
        (w["w"].to_numpy(), (w["doc"].to_numpy(), w["term"].to_numpy())),
        shape=(n, terms.height),
        dtype=np.float32,
    )
