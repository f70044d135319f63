"""Choosing among named strategies (arms) online: Thompson sampling, UCB, or a fixed A/B split.

Every choice comes with its *propensity*, the probability with which the arm was drawn, so that logged
traffic can later be re-weighted to estimate another policy (:mod:`shopstream.models.off_policy`). To make
that probability exact rather than estimated after the fact, a policy first computes the whole
distribution over arms and then draws from it:

- ``thompson``: each arm's probability of having the best Beta-Bernoulli posterior sample, estimated with
  ``draws`` joint posterior samples (a fixed number, seeded); the arm is then drawn from those estimated
  probabilities, so the logged propensity is the probability actually used, not an approximation of it;
- ``ucb``: all mass on the arm with the highest UCB1-Tuned index;
- ``ab``: a fixed split, the arm chosen by a hash of the context key (the same session always gets the same
  arm), the propensity the arm's share.

Bandit policies mix the distribution with a uniform floor, ``p = (1 - floor) * p + floor / K``, so every arm
keeps at least ``floor / K`` of the traffic (and every propensity is at least that: IPS weights stay
bounded). The distribution is recomputed after ``refresh_every`` updates, not on every choice; state is a few
numbers per arm, whatever the traffic.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Sequence
from typing import Literal

import numpy as np

PolicyName = Literal["thompson", "ucb", "ab"]
POLICIES: tuple[PolicyName, ...] = ("thompson", "ucb", "ab")


class Bandit:
    """A multi-armed bandit over named arms with Bernoulli rewards (click or not), and logged propensities.

    Parameters
    ----------
    arms
        The strategies' names, a fixed set (they are metric labels).
    policy
        ``thompson``, ``ucb`` or ``ab``.
    floor
        Share of traffic spread uniformly over the arms whatever the posterior (``epsilon``); ignored by ``ab``.
    seed
        Same seed and same calls, same choices.
    draws
        Joint posterior samples behind Thompson sampling's probabilities.
    refresh_every
        Updates between recomputations of the distribution.
    split
        ``ab`` only: each arm's share (default: equal).

    Examples
    --------
    >>> bandit = Bandit(["a", "b"], "ucb", floor=0.2, seed=1)
    >>> for _ in range(100):
    ...     bandit.update("a", 1.0)
    ...     bandit.update("b", 0.0)
    >>> {arm: round(p, 6) for arm, p in bandit.probabilities().items()}
    {'a': 0.9, 'b': 0.1}
    >>> arm, propensity = bandit.choose("s1")
    >>> propensity == bandit.probabilities()[arm]
    True
    >>> Bandit(["a", "b"], "ab").choose("s1") == Bandit(["a", "b"], "ab").choose("s1")
    True
    """

    def __init__(
        self,
        arms: Sequence[str],
        policy: PolicyName = "thompson",
        floor: float = 0.1,
        seed: int = 0,
        draws: int = 2000,
        refresh_every: int = 100,
        split: Sequence[float] | None = None,
    ) -> None:
        if len(arms) < 1 or len(set(arms)) != len(arms):
            raise ValueError("arms must be distinct names, at least one")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}")
        if not 0.0 <= floor <= 1.0:
            raise ValueError("floor must be in [0, 1]")
        self.arms = tuple(arms)
        self.policy = policy
        self.floor = floor
        self.draws = draws
        self.refresh_every = refresh_every
        weights = np.asarray(split if split is not None else [1.0] * len(arms), dtype=float)
        if weights.shape != (len(arms),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("split needs one non-negative share per arm")
        self._split = weights / weights.sum()
        self._index = {arm: i for i, arm in enumerate(self.arms)}
        self._pulls = np.zeros(len(arms))
        self._rewards = np.zeros(len(arms))
        self._random = random.Random(seed)
        self._rng = np.random.default_rng(seed)
        self._since_refresh = 0
        self._probabilities = self._compute()
        self._cumulative = np.cumsum(self._probabilities).tolist()

    def choose(self, context_key: str, keyed: bool = False) -> tuple[str, float]:
        """The arm for this context (a session id) and the exact probability it was chosen with. ``keyed``
        draws by a hash of the key, as ``ab`` always does, instead of the seeded generator, which every later
        draw then finds as it was.

        >>> bandit, other = Bandit(["a", "b", "c"], seed=1), Bandit(["a", "b", "c"], seed=1)
        >>> _ = bandit.choose("s1", keyed=True)
        >>> [bandit.choose(f"s{i}") for i in range(5)] == [other.choose(f"s{i}") for i in range(5)]
        True
        """
        if self.policy == "ab" or keyed:
            digest = hashlib.blake2b(context_key.encode(), digest_size=8).digest()
            u = int.from_bytes(digest, "big") / 2**64
        else:
            u = self._random.random()
        i = min(np.searchsorted(self._cumulative, u, side="right"), len(self.arms) - 1)
        while self._probabilities[i] == 0.0:  # u fell on a zero-width boundary: the next arm with mass
            i = (i + 1) % len(self.arms)
        return self.arms[i], float(self._probabilities[i])

    def update(self, arm: str, reward: float, pulls: int = 1) -> None:
        """Record ``pulls`` trials of ``arm`` (impressions) and their ``reward`` (clicks). A reward that arrives
        after its trial was recorded is credited with ``pulls=0``. Unknown arms are ignored (they come from
        clients)."""
        i = self._index.get(arm)
        if i is None:
            return
        self._pulls[i] += pulls
        self._rewards[i] += reward
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every:
            self.refresh()

    def refresh(self) -> None:
        """Recompute the distribution from the evidence so far."""
        self._since_refresh = 0
        self._probabilities = self._compute()
        self._cumulative = np.cumsum(self._probabilities).tolist()

    def probabilities(self) -> dict[str, float]:
        """The distribution choices are drawn from now (the allocation)."""
        return {arm: float(p) for arm, p in zip(self.arms, self._probabilities, strict=True)}

    def stats(self) -> dict[str, tuple[float, float]]:
        """``(pulls, rewards)`` per arm."""
        return {arm: (float(self._pulls[i]), float(self._rewards[i])) for arm, i in self._index.items()}

    def _compute(self) -> np.ndarray:
        k = len(self.arms)
        if self.policy == "ab":
            return self._split.copy()
        if self.policy == "thompson":
            successes = np.minimum(self._rewards, self._pulls)
            samples = self._rng.beta(1.0 + successes, 1.0 + self._pulls - successes, size=(self.draws, k))
            greedy = np.bincount(samples.argmax(axis=1), minlength=k) / self.draws
        else:
            greedy = np.zeros(k)
            greedy[int(np.argmax(self._ucb()))] = 1.0
        return (1.0 - self.floor) * greedy + self.floor / k

    def _ucb(self) -> np.ndarray:
        """UCB1-Tuned indices (Auer et al. 2002): the bonus shrinks with the arm's variance, which for
        click-through rates of a few percent is far below UCB1's worst case of 1/4. Untried arms come first."""
        log_total = math.log(max(self._pulls.sum(), 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(self._pulls > 0, np.minimum(self._rewards, self._pulls) / self._pulls, 0.0)
            variance = means * (1.0 - means) + np.sqrt(2.0 * log_total / self._pulls)
            bonus = np.sqrt(log_total / self._pulls * np.minimum(0.25, variance))
        return np.where(self._pulls > 0, means + bonus, np.inf)
