using Microsoft.Extensions.Time.Testing;

namespace Polly.PriorityRouting.Tests.Support;

/// <summary>
/// An in-memory store that advances a fake clock right after one read of one key, once: time passing between the
/// reads of a single routing step (a deadline passing between the selection and the exhausted answer).
/// </summary>
internal sealed class ClockAdvancingStore(FakeTimeProvider time) : IBackendStateStore
{
    private BackendStateKey? _armedKey;
    private TimeSpan _delta;

    public InMemoryBackendStateStore Inner { get; } = new();

    /// <summary>The next read of <paramref name="key"/> answers as of now, then the clock moves on by <paramref name="delta"/>.</summary>
    public void AdvanceAfterReading(BackendStateKey key, TimeSpan delta) => (_armedKey, _delta) = (key, delta);

    public bool TryGetUnavailability(BackendStateKey key, out BackendUnavailability unavailability)
    {
        var found = Inner.TryGetUnavailability(key, out unavailability);
        if (_armedKey == key)
        {
            _armedKey = null;
            time.Advance(_delta);
        }

        return found;
    }

    public ValueTask MarkUnavailableAsync(BackendStateKey key, BackendUnavailability unavailability, DateTimeOffset now, CancellationToken cancellationToken)
        => Inner.MarkUnavailableAsync(key, unavailability, now, cancellationToken);

    public IReadOnlyList<KeyValuePair<BackendStateKey, BackendUnavailability>> GetEntries(string backend) => Inner.GetEntries(backend);
}
