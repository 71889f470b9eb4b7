"""Markdown summaries of gates and decisions, for Prefect artifacts."""

from __future__ import annotations

from qhybrid.core import BaselineResult, GateResult, PromotionDecision


def gate_markdown(result: GateResult, title: str) -> str:
    """A gate's verdict, its criteria and its metrics as markdown."""
    verdict = "PASS" if result.passed else "FAIL"
    lines = [f"# {title}: gate `{result.gate}` {verdict}", "",
             f"backend `{result.backend}`, {result.seconds:.2f} s", ""]
    if result.criteria:
        lines += ["| criterion | value | rule | verdict |", "|---|---|---|---|"]
        lines += [f"| {c.name} | {c.value:.6g} | {c.op} {c.limit:.6g} | "
                  f"{'pass' if c.passed else 'FAIL'} |" for c in result.criteria]
        lines.append("")
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" for k, v in sorted(result.metrics.items())]
    return "\n".join(lines)


def decision_markdown(
    decision: PromotionDecision, baselines: list[BaselineResult], title: str,
    registered_version: str | None, mlflow_url: str,
) -> str:
    """The promotion decision: the registered version, the score against the champion's, the
    reasons, the classical baselines and a link to the MLflow run."""
    lines = [f"# {title}: {'PROMOTED' if decision.promote else 'REFUSED'}", "",
             "| | |", "|---|---|",
             f"| registered version | {registered_version or 'none (refused)'} |",
             f"| aliases | {', '.join(f'`{a}`' for a in decision.aliases) or 'none'} |",
             f"| score | {_number(decision.score)} |",
             f"| champion's score | {_number(decision.champion_score)} |",
             f"| MLflow run | [{mlflow_url.rsplit('/', 1)[-1]}]({mlflow_url}) |", ""]
    lines += [*[f"- {r}" for r in decision.reasons], ""]
    if baselines:
        lines += ["| baseline | objective | quality | seconds | exact |", "|---|---|---|---|---|"]
        lines += [f"| {b.solver} | {b.objective:.6g} | {b.quality:.4f} | {b.seconds:.4f} | "
                  f"{b.exact} |" for b in baselines]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"
