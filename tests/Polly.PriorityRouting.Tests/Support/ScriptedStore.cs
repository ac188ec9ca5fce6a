namespace Polly.PriorityRouting.Tests.Support;

/// <summary>A store whose reads and writes do what a test says: fail, observe cancellation, or nothing.</summary>
internal sealed class ScriptedStore(
    Func<BackendStateKey, BackendUnavailability?>? read = null,
    Func<CancellationToken, ValueTask>? mark = null) : IBackendStateStore
{
    public static ScriptedStore FailingWrites() => new(mark: _ => ValueTask.FromException(new InvalidOperationException("store is down")));

    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
    {
        var state = read?.Invoke(key);
        unavailability = state ?? default;
        return state is not null;
    }

    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => mark?.Invoke(cancellationToken) ?? default;

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => [];
}
