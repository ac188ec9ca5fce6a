namespace PriorityRouting.Simulation;

/// <summary>
/// The kept-promise bound: under a sustained load above 1, a share u = 1 − 1/load of the requests cannot be served; a
/// caller that retries R times whatever it is told makes R broken promises per unserved request and at most one kept
/// one per served request, so no router whose waits are bounded keeps more than (1 − u) / ((1 − u) + R·u) of them.
/// </summary>
public static class KeptPromise
{
    /// <summary>Returns the bound at <paramref name="load"/> (a multiple of capacity) for callers that retry <paramref name="retries"/> times.</summary>
    public static double Bound(double load, int retries)
    {
        if (load <= 1)
        {
            return 1;
        }

        var unserved = 1 - (1 / load);
        return (1 - unserved) / ((1 - unserved) + (retries * unserved));
    }
}
