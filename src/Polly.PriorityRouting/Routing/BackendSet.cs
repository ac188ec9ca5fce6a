namespace Polly.PriorityRouting;

/// <summary>
/// A set of backends by index: a bit mask, so that up to 64 backends cost no allocation. A request's plan keeps two:
/// the backends it may not use at all, and those closed to its next attempt (not allowed, or already tried).
/// </summary>
internal struct BackendSet
{
    private const int MaskCapacity = 64;

    private readonly bool[]? _overflow;
    private ulong _mask;

    /// <summary>Initializes an empty set over <paramref name="backendCount"/> backends.</summary>
    public BackendSet(int backendCount)
    {
        _overflow = backendCount > MaskCapacity ? new bool[backendCount] : null;
        _mask = 0;
    }

    /// <summary>A set of every backend but <paramref name="only"/>: restricts a request to one backend.</summary>
    public static BackendSet AllExcept(int backendCount, int only)
    {
        var set = new BackendSet(backendCount);
        set.AddAllExcept(only);
        return set;
    }

    /// <summary>An independent copy (the overflow array of a large pool is copied too).</summary>
    public readonly BackendSet Copy()
    {
        var copy = this;
        if (_overflow is not null)
        {
            copy = new BackendSet(_overflow.Length);
            _overflow.CopyTo(copy._overflow!, 0);
        }

        return copy;
    }

    public readonly bool Contains(int index) => _overflow is null ? (_mask & (1UL << index)) != 0 : _overflow[index];

    public void Add(int index)
    {
        if (_overflow is null)
        {
            _mask |= 1UL << index;
        }
        else
        {
            _overflow[index] = true;
        }
    }

    /// <summary>Adds every backend but <paramref name="only"/> (bits beyond the pool's size are never read).</summary>
    public void AddAllExcept(int only)
    {
        if (_overflow is null)
        {
            _mask |= ~(1UL << only);
            return;
        }

        for (var i = 0; i < _overflow.Length; i++)
        {
            _overflow[i] |= i != only;
        }
    }
}
