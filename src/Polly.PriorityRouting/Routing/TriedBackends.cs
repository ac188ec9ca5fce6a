namespace Polly.PriorityRouting;

/// <summary>
/// The set of backends one execution has already tried: a bit mask, so that up to 64 backends cost no allocation.
/// </summary>
internal struct TriedBackends
{
    private const int MaskCapacity = 64;

    private readonly bool[]? _overflow;
    private ulong _mask;

    public TriedBackends(int backendCount)
    {
        _overflow = backendCount > MaskCapacity ? new bool[backendCount] : null;
        _mask = 0;
    }

    /// <summary>A set in which every backend but <paramref name="only"/> is tried: restricts a request to one backend.</summary>
    public static TriedBackends AllExcept(int backendCount, int only)
    {
        var tried = new TriedBackends(backendCount);
        for (var i = 0; i < backendCount; i++)
        {
            if (i != only)
            {
                tried.Add(i);
            }
        }

        return tried;
    }

    /// <summary>An independent copy (the overflow array of a large pool is copied too).</summary>
    public readonly TriedBackends Copy()
    {
        var copy = this;
        if (_overflow is not null)
        {
            copy = new TriedBackends(_overflow.Length);
            for (var i = 0; i < _overflow.Length; i++)
            {
                if (_overflow[i])
                {
                    copy.Add(i);
                }
            }
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
}
