namespace PriorityRouting.Simulation.Routers;

/// <summary>
/// The state LiteLLM keeps in Redis for usage-based routing: per deployment, what was sent in the current minute and
/// until when it is cooled down.
/// </summary>
internal sealed class UsageLedger(IReadOnlyList<SimulatedBackendSpec> backends)
{
    public SimulatedBackendSpec[] Backends { get; } = [.. backends.OrderBy(b => b.Priority)];

    public long[] UsedThisMinute { get; } = new long[backends.Count];

    public DateTimeOffset[] CooledDownUntil { get; } = new DateTimeOffset[backends.Count];

    public long Minute { get; set; } = -1;

    /// <summary>Starts a new minute's counts when the clock has moved into one.</summary>
    public void Roll(DateTimeOffset now)
    {
        var minute = now.ToUnixTimeSeconds() / 60;
        if (minute != Minute)
        {
            Minute = minute;
            Array.Clear(UsedThisMinute);
        }
    }

    public long LimitPerMinute(int index) => (long)(Backends[index].CapacityPerSecond * 60);
}
