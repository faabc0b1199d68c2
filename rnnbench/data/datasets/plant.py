"""A synthetic HAI-shaped plant: three coupled PI-controlled processes and stealthy attacks."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "DAY",
    "PLANT_ATTACK_KINDS",
    "PLANT_SENSORS",
    "make_plant",
    "place_attacks",
]

DAY = 1440  # steps per day: one step is one minute
PLANT_ATTACK_KINDS = ("drift", "replay", "hidden_actuator", "setpoint")
PLANT_SENSORS = (
    "P1_PIT01",  # supply pressure (bar), daily cycle
    "P1_FCV01D",  # inlet valve command (%), from the level controller
    "P1_FCV01Z",  # inlet valve position (%), lags the command
    "P1_FIT01",  # inflow (m3/h)
    "P1_LIT01",  # tank level (%), controlled
    "P1_LSP01",  # level setpoint (%), daily schedule
    "P2_TIT01",  # heater tank temperature (degC), controlled
    "P2_TIT02",  # inlet water temperature (degC)
    "P2_HTR01",  # heater power (%), lags its command
    "P2_TSP01",  # temperature setpoint (degC), daily schedule
    "P3_FIT01",  # consumer demand (m3/h), daily profile
    "P3_PIT01",  # outlet pressure (bar), controlled
    "P3_SIT01",  # pump speed (%), lags its command
    "P3_PSP01",  # pressure setpoint (bar), daily schedule
    "P4_TIT01",  # ambient temperature (degC), daily cycle
)
_IDX = {name: i for i, name in enumerate(PLANT_SENSORS)}
_NOISE = np.array([0.01, 0.0, 0.2, 0.5, 0.2, 0.0, 0.05, 0.05, 0.3, 0.0, 0.5, 0.01, 0.2, 0.0,
                   0.05])  # (S,) measurement noise; commands and setpoints are exact
# Drift targets and the size (engineering units) a drift reaches at its end.
_DRIFT = {"P1_LIT01": 8.0, "P2_TIT01": 5.0, "P3_PIT01": 0.4, "P1_FIT01": 10.0, "P3_FIT01": 10.0}
_REPLAY = ("P3_FIT01", "P1_PIT01", "P4_TIT01", "P1_LIT01", "P2_TIT01", "P3_PIT01")
_MIN_ATTACK, _MAX_ATTACK, _MIN_GAP = 30, 240, 60


def place_attacks(
    rng: np.random.Generator, n_steps: int, n_attacks: int,
    min_len: int = _MIN_ATTACK, max_len: int = _MAX_ATTACK, min_gap: int = _MIN_GAP,
) -> list[tuple[int, int]]:
    """Non-overlapping ``[start, end)`` ranges in the second half, ``min_gap`` steps apart.

    The second half is cut into ``n_attacks`` equal slots and each attack lies in its own
    slot, so any contiguous stretch of it (the validation and test quarters) holds its share
    of the attacks instead of all of them landing in one.
    """
    if n_attacks == 0:
        return []
    lo = n_steps // 2
    width = (n_steps - lo) // n_attacks
    longest = min(max_len, width - min_gap)
    if longest < min_len:
        raise ValueError(
            f"n_steps={n_steps} is too short for {n_attacks} attacks: attacks go in the second "
            f"half, one in each of {n_attacks} equal slots of at least "
            f"{min_len + min_gap} steps ({min_len}-{max_len} steps of attack after "
            f"a {min_gap}-step gap; about {n_attacks * (max_len + min_gap) * 2} steps "
            "give every attack its full length range); use more steps or fewer attacks"
        )
    ranges = []
    for k in range(n_attacks):
        length = int(rng.integers(min_len, longest + 1))
        start = lo + k * width + min_gap + int(rng.integers(0, width - min_gap - length + 1))
        ranges.append((start, start + length))
    return ranges


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    e = rng.normal(0.0, sd, n)  # (n,)
    y = np.empty(n)
    y[0] = e[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        y[t] = phi * y[t - 1] + e[t]
    return y


def _schedule(rng: np.random.Generator, n: int, day: float, night: float) -> tuple:
    """A day/night setpoint: ``day`` from hour ``on`` to hour ``off``, ``night`` otherwise."""
    on = int(rng.integers(5, 9)) * 60 + int(rng.choice([0, 30]))  # minute of day
    off = int(rng.integers(20, 23)) * 60 + int(rng.choice([0, 30]))
    minute = np.arange(n) % DAY
    return np.where((minute >= on) & (minute < off), day, night), (on, off)


def _exogenous(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Weather, supply pressure, water temperature and consumer demand (daily cycles)."""
    phase = 2 * np.pi * (np.arange(n) % DAY) / DAY  # (n,)
    peak = rng.uniform(13.0, 16.0) / 24 * 2 * np.pi  # warmest hour
    ambient = 20 + rng.uniform(4, 7) * np.cos(phase - peak) + _ar1(rng, n, 0.999, 0.04)
    supply = 3.0 + 0.25 * np.cos(phase - np.pi / 12) + _ar1(rng, n, 0.99, 0.01)
    inlet = 12 + 0.3 * (ambient - 20) + _ar1(rng, n, 0.98, 0.03)
    hours = (np.arange(n) % DAY) / 60.0
    morning, evening = rng.uniform(6.5, 8.5), rng.uniform(18.0, 20.5)
    profile = (np.exp(-0.5 * ((hours - morning) / 1.2) ** 2)
               + 0.8 * np.exp(-0.5 * ((hours - evening) / 1.6) ** 2))  # (n,)
    demand = rng.uniform(32, 38) * (1 + 0.6 * profile) + _ar1(rng, n, 0.97, 0.8)
    return {"ambient": ambient, "supply": supply, "inlet": inlet, "demand": demand}


class _Attacks:
    """Per-step attack effects the simulation applies (arrays of NaN or offsets)."""

    def __init__(self, n: int) -> None:
        self.bias = np.zeros((n, len(PLANT_SENSORS)))  # (n, S) added to a reading (drift)
        self.replay = np.full((n, len(PLANT_SENSORS)), -1, dtype=np.int64)  # source step
        self.spoof = np.zeros((n, len(PLANT_SENSORS)), dtype=bool)  # reading shows normal
        self.force = np.zeros((n, 2))  # (n, 2) added to valve / heater actual position


def _plan(rng, n, n_attacks, sp, switches) -> tuple[_Attacks, list[dict]]:
    """Draws the attacks: kinds cycle so each quarter of the second half gets every kind."""
    eff = _Attacks(n)
    ranges = place_attacks(rng, n, n_attacks)
    order = rng.permutation(len(PLANT_ATTACK_KINDS))
    attacks = []
    for k, (start, end) in enumerate(ranges):
        kind = PLANT_ATTACK_KINDS[order[k % len(order)]]
        span = end - start
        if kind == "drift":
            name = str(rng.choice(list(_DRIFT)))
            size = rng.choice([-1.0, 1.0]) * _DRIFT[name] * rng.uniform(0.8, 1.2)
            eff.bias[start:end, _IDX[name]] = np.linspace(0.0, size, span)
            detail = {"size": float(size)}
        elif kind == "replay":
            name = str(rng.choice(_REPLAY))
            eff.replay[start:end, _IDX[name]] = -2  # resolved during the simulation
            detail = {}
        elif kind == "hidden_actuator":
            loop = int(rng.integers(0, 2))  # 0: inlet valve + level, 1: heater + temperature
            name = ("P1_FCV01Z", "P2_HTR01")[loop]
            shown = ("P1_LIT01", "P2_TIT01")[loop]
            size = rng.choice([-1.0, 1.0]) * rng.uniform(8.0, 12.0)
            ramp = np.minimum(np.arange(1, span + 1) / 15.0, 1.0)  # 15-step ramp: no jump
            eff.force[start:end, loop] = size * ramp
            eff.spoof[start:end, [_IDX[name], _IDX[shown]]] = True
            detail = {"size": float(size), "spoofed": [name, shown]}
        else:  # setpoint change outside the schedule
            minute = start % DAY
            far = [j for j in range(3) if all(min(abs(minute - s), DAY - abs(minute - s)) > 60
                                              for s in switches[j])]
            loop = int(rng.choice(far or [0, 1, 2]))
            name = ("P1_LSP01", "P2_TSP01", "P3_PSP01")[loop]
            levels = np.unique(sp[loop])
            now = sp[loop][start]
            other = levels[levels != now]
            value = other[0] if len(other) else now * 1.15
            sp[loop][start:end] = value
            detail = {"value": float(value), "scheduled": float(now)}
        attacks.append({"start": start, "end": end, "kind": kind, "sensors": [name], **detail})
    return eff, attacks


def _simulate(rng, n, ext, sp, eff) -> np.ndarray:
    """Runs the three PI loops step by step; returns the ``(n, S)`` readings (why a loop:
    the controllers act on what the sensors report, attacks included). Plain floats keep
    it at a few microseconds a step."""
    noise = (rng.normal(0.0, 1.0, (n, len(PLANT_SENSORS))) * _NOISE).tolist()  # (n, S)
    out = np.empty((n, len(PLANT_SENSORS)))
    attacked = (eff.bias != 0).any(1) | (eff.replay != -1).any(1) | eff.spoof.any(1)  # (n,)
    attacked |= (eff.force != 0).any(1)
    amb_s, sup_s, tin_s, dem_s = (ext[k].tolist() for k in ("ambient", "supply", "inlet",
                                                             "demand"))
    sp1, sp2, sp3 = (s.tolist() for s in sp)
    lvl, temp, pres = sp1[0], sp2[0], sp3[0]
    cmd_v, cmd_h, cmd_p = 45.0, 50.0, 75.0
    shadow_v, shadow_h, speed = cmd_v, cmd_h, cmd_p  # shadow: the actuator unmanipulated
    i_v = i_h = i_p = 0.0
    for t in range(n):
        amb, sup, tin, dem = amb_s[t], sup_s[t], tin_s[t], dem_s[t]
        # actuators: first-order lag towards the command; an attacker may force them
        shadow_v += (cmd_v - shadow_v) / 3.0
        shadow_h += (cmd_h - shadow_h) / 5.0
        speed += (cmd_p - speed) / 3.0
        valve, heat = shadow_v, shadow_h
        if attacked[t]:
            valve = min(max(shadow_v + eff.force[t, 0], 0.0), 100.0)
            heat = min(max(shadow_h + eff.force[t, 1], 0.0), 100.0)
        # processes: tank mass balance, heater energy balance, pump pressure
        inflow = valve * (sup / 3.0) ** 0.5
        lvl = min(max(lvl + 0.02 * (inflow - dem), 0.0), 100.0)
        temp += 0.0011 * (dem * (tin - temp) + 45.0 * heat - 5.0 * (temp - amb))
        target = 8.0 * (speed / 100) ** 2 - 3.0 * (dem / 100) ** 2 + 0.5 * lvl / 100
        pres += (target - pres) / 2.0
        nz = noise[t]
        read = [sup + nz[0], cmd_v, valve + nz[2], inflow + nz[3], lvl + nz[4], sp1[t],
                temp + nz[6], tin + nz[7], heat + nz[8], sp2[t], dem + nz[10], pres + nz[11],
                speed + nz[12], sp3[t], amb + nz[14]]
        if attacked[t]:
            read = _attack_readings(eff, t, read, nz, out, (shadow_v, shadow_h, sp1[t], sp2[t]))
        out[t] = read
        # PI controllers on the readings (anti-windup: the integral stops at saturation)
        e = read[5] - read[4]
        raw = 45.0 + 4.0 * e + 0.05 * i_v
        cmd_v = min(max(raw, 0.0), 100.0)
        i_v += e if raw == cmd_v else 0.0
        e = read[9] - read[6]
        raw = 50.0 + 2.0 * e + 0.1 * i_h
        cmd_h = min(max(raw, 0.0), 100.0)
        i_h += e if raw == cmd_h else 0.0
        e = read[13] - read[11]
        raw = 75.0 + 3.0 * e + 0.5 * i_p
        cmd_p = min(max(raw, 0.0), 100.0)
        i_p += e if raw == cmd_p else 0.0
    return out


def _attack_readings(eff, t, read, nz, out, normal) -> list[float]:
    """What the sensors report at an attacked step: drift, spoofed or replayed readings."""
    read = [r + b for r, b in zip(read, eff.bias[t].tolist())]
    if eff.spoof[t].any():  # the attacker shows what the operators expect to see
        for name, value in zip(("P1_FCV01Z", "P2_HTR01", "P1_LIT01", "P2_TIT01"), normal):
            j = _IDX[name]
            if eff.spoof[t, j]:
                read[j] = value + nz[j]
    for j in np.flatnonzero(eff.replay[t] != -1).tolist():
        if eff.replay[t, j] == -2:  # first replayed step: about a day back, smallest jump
            lag = _replay_lag(out[:t, j], t)
            col = eff.replay[t:, j]  # (n - t,) a view
            col[col == -2] = lag
        read[j] = float(out[t - eff.replay[t, j], j])
    return read


def _replay_lag(history: np.ndarray, t: int) -> int:
    """How far back a replay reads: about one day (same time of day), within 30 steps of
    it, where yesterday's value is closest to the last reading (no jump when it starts)."""
    centre = min(DAY, t - 1)
    lags = np.arange(max(1, centre - 30), min(t, centre + 30) + 1)  # (L,)
    return int(lags[np.argmin(np.abs(history[t - lags] - history[t - 1]))])


def make_plant(n_steps: int = 30000, n_attacks: int = 24, seed: int = 0) -> pd.DataFrame:
    """Simulate a three-process plant under closed-loop control, with labelled attacks.

    Modelled on the HAI testbed's shape, one step per minute: P1 keeps a tank level at
    its setpoint with an inlet valve (PI loop, valve lag 3 steps) against the consumers'
    demand and a supply pressure with a daily cycle; P2 heats the water flowing through it
    to a temperature setpoint (PI loop, heater lag 5 steps) against the inlet water and
    ambient temperatures; P3 holds the outlet pressure with a pump (PI loop, lag 3 steps),
    which depends on the demand and the P1 level. Setpoints follow a daily day/night
    schedule (switch times drawn per plant); demand has morning and evening peaks; every
    measured signal carries sensor noise. The 15 columns are :data:`PLANT_SENSORS`.

    Attacks lie in the second half only (the first half is attack-free, like HAI's training
    files), one in each of ``n_attacks`` equal slots, 30-240 steps long, and are built so
    that the last value alone does not reveal them (:data:`PLANT_ATTACK_KINDS`, cycled so
    every run of four consecutive attacks has all four):

    - ``drift``: a reading ramps slowly (8% of level, 5 degC, ...) over the attack; per
      step the change is within the sensor noise. On a controlled variable the controller
      follows the false reading and moves the real process the other way.
    - ``replay``: one sensor replays its own readings from about a day earlier (the lag
      chosen within 30 steps of a day so the replay starts without a jump) while the
      process moves on.
    - ``hidden_actuator``: the inlet valve (or the heater) is forced 8-12 points away from
      its command over a 15-step ramp, while its position reading and the controlled
      variable's reading are spoofed to look normal; only the coupled sensors (inflow,
      pressure, heater power, ...) show it.
    - ``setpoint``: a loop's setpoint is switched to its other scheduled level at a time of
      day when the schedule never switches it (more than an hour from its switch times when
      a loop allows), then switched back.

    ``frame.attrs["attacks"]`` lists them (dicts with ``start``, ``end`` (exclusive),
    ``kind``, ``sensors`` and kind-specific details); ``frame.attrs["schedule"]`` holds each
    loop's switch minutes.

    Args:
        n_steps: Number of steps (one per minute; 1,440 a day).
        n_attacks: Number of attacks; the second half needs at least 90 steps per attack.
        seed: Seed of the ``numpy.random.Generator``: the plant and its attacks.

    Returns:
        A frame with ``time`` (timestamps 1 minute apart, from midnight), the sensors
        (float64) and ``attack`` (int64, 1 during an attack).
    """
    for name, value, low in (("n_steps", n_steps, 2), ("n_attacks", n_attacks, 0)):
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    ext = _exogenous(rng, n_steps)
    sp, switches = [], []
    for day, night in ((rng.uniform(55, 65), rng.uniform(40, 48)),
                       (rng.uniform(62, 68), rng.uniform(52, 57)),
                       (rng.uniform(4.1, 4.4), rng.uniform(3.6, 3.9))):
        values, times = _schedule(rng, n_steps, round(day, 1), round(night, 1))
        sp.append(values.astype(np.float64))
        switches.append(times)
    eff, attacks = _plan(rng, n_steps, n_attacks, sp, switches)
    values = _simulate(rng, n_steps, ext, sp, eff)  # (n_steps, S)
    label = np.zeros(n_steps, dtype=np.int64)
    for a in attacks:
        label[a["start"]:a["end"]] = 1
    frame = pd.DataFrame(values, columns=list(PLANT_SENSORS))
    frame.insert(0, "time", pd.date_range("2021-07-11 00:00:00", periods=n_steps, freq="min"))
    frame["attack"] = label
    frame.attrs["attacks"] = attacks
    frame.attrs["schedule"] = {"P1_LSP01": switches[0], "P2_TSP01": switches[1],
                               "P3_PSP01": switches[2]}
    return frame
