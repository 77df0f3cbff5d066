"""The DuckDB peer of the ledger benchmark: the same monthly chargeback
aggregation, with the same effective-dated rates, over the same raw Parquet.

    python3 ledger_duckdb.py DATA_DIR RATES.json START_US END_US FIRST_DT LAST_DT

Prints one JSON object: {"teams": {"tenant/team": "exact decimal"}, "seconds": query time}.
"""

import json
import sys
import time

import duckdb


def main():
    root, rates_path, start_us, end_us, first_dt, last_dt = sys.argv[1:7]
    rates = json.load(open(rates_path))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "CREATE TABLE gpu_rates (gpu_model VARCHAR, pricing_tier VARCHAR, f BIGINT, t BIGINT, rate DECIMAL(38, 18))"
    )
    con.execute(
        "CREATE TABLE token_rates (model VARCHAR, f BIGINT, t BIGINT, i DECIMAL(38, 18), o DECIMAL(38, 18))"
    )
    con.execute("CREATE TABLE tool_fees (tool VARCHAR, f BIGINT, t BIGINT, fee DECIMAL(38, 18))")
    for r in rates["gpu"]:
        con.execute("INSERT INTO gpu_rates VALUES (?, ?, ?, ?, ?)", [r["gpu_model"], r["tier"], r["from"], r["to"], r["rate"]])
    for r in rates["tokens"]:
        con.execute("INSERT INTO token_rates VALUES (?, ?, ?, ?, ?)", [r["model"], r["from"], r["to"], r["input"], r["output"]])
    for r in rates["tools"]:
        con.execute("INSERT INTO tool_fees VALUES (?, ?, ?, ?)", [r["tool"], r["from"], r["to"], r["fee"]])
    gpu = f"read_parquet('{root}/tables/gpu_usage/*/*.parquet', hive_partitioning = true)"
    calls = f"read_parquet('{root}/tables/tool_calls/*/*.parquet', hive_partitioning = true)"
    sql = f"""
        SELECT tenant, team, "user", environment, workload_kind, gpu_model, SUM(cost) AS cost
        FROM (
          SELECT u.tenant, u.team, u."user", u.environment, u.workload_kind, u.gpu_model,
                 CAST(u.gpu_millis AS DECIMAL(20, 0)) * r.rate AS cost
          FROM {gpu} u
          LEFT JOIN gpu_rates r
            ON u.gpu_model = r.gpu_model AND u.pricing_tier = r.pricing_tier
           AND epoch_us(u.interval_start) >= r.f AND epoch_us(u.interval_start) < r.t
          WHERE epoch_us(u.interval_start) >= {start_us} AND epoch_us(u.interval_start) < {end_us}
            AND u.dt BETWEEN '{first_dt}' AND '{last_dt}'
          UNION ALL
          SELECT c.tenant, c.team, c."user", c.environment, 'tool_call', '-',
                 CASE WHEN c.model IS NULL THEN CAST(0 AS DECIMAL(38, 18))
                      ELSE CAST(COALESCE(c.input_tokens, 0) AS DECIMAL(20, 0)) * t.i
                         + CAST(COALESCE(c.output_tokens, 0) AS DECIMAL(20, 0)) * t.o END
                 + COALESCE(f.fee, CAST(0 AS DECIMAL(38, 18))) AS cost
          FROM {calls} c
          LEFT JOIN token_rates t
            ON c.model = t.model AND epoch_us(c.time) >= t.f AND epoch_us(c.time) < t.t
          LEFT JOIN tool_fees f
            ON c.tool = f.tool AND epoch_us(c.time) >= f.f AND epoch_us(c.time) < f.t
          WHERE c.phase = 'end' AND epoch_us(c.time) >= {start_us} AND epoch_us(c.time) < {end_us}
            AND c.dt BETWEEN '{first_dt}' AND '{last_dt}'
        )
        GROUP BY 1, 2, 3, 4, 5, 6
    """
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    teams = {}
    for tenant, team, _user, _env, _kind, _gpu, cost in rows:
        key = f"{tenant}/{team}"
        teams[key] = teams.get(key, 0) + (cost or 0)
    print(json.dumps({"teams": {k: str(v) for k, v in teams.items()}, "seconds": seconds}))


if __name__ == "__main__":
    main()
