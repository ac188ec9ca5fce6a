namespace Polly.PriorityRouting;

/// <summary>
/// One configured model as the backends that serve it see it (see <see cref="PriorityRoutingSnapshot"/>): how long until
/// one of them can take it, and whether one of its best tier can now.
/// </summary>
/// <param name="Name">The logical model name.</param>
/// <param name="TimeUntilAvailable">Zero when a backend that serves the model is available.</param>
/// <param name="IsTopTierAvailable">Whether a backend of the best tier that serves the model is available.</param>
internal readonly record struct ModelAvailability(string Name, TimeSpan TimeUntilAvailable, bool IsTopTierAvailable)
{
    public bool IsAvailable => TimeUntilAvailable == TimeSpan.Zero;
}
