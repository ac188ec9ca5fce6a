using System.Reflection;

namespace Polly.PriorityRouting;

/// <summary>
/// Tells whether Polly executes a pipeline synchronously (<c>ResiliencePipeline.Execute</c>, which
/// <c>ResilienceHandler</c> uses for <c>HttpClient.Send</c>): a synchronous caller's thread is blocked anyway, so a
/// wait should block it rather than continue on a thread-pool thread that would then block in a synchronous send.
/// </summary>
/// <remarks>
/// Polly keeps <c>ResilienceContext.IsSynchronous</c> internal for now (its own delays read it to sleep synchronously):
/// it is read once through reflection, and an execution is taken as asynchronous if a later Polly drops it — waits then
/// continue on the thread pool, which costs threads, never correctness.
/// </remarks>
internal static class SynchronousExecution
{
    private static readonly Func<ResilienceContext, bool>? IsSynchronousGetter = CreateGetter();

    /// <summary>Returns whether <paramref name="context"/> belongs to a synchronous execution.</summary>
    public static bool Is(ResilienceContext context) => IsSynchronousGetter?.Invoke(context) ?? false;

    private static Func<ResilienceContext, bool>? CreateGetter()
    {
        var getter = typeof(ResilienceContext)
            .GetProperty("IsSynchronous", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)?
            .GetGetMethod(nonPublic: true);
        return getter?.ReturnType == typeof(bool) ? getter.CreateDelegate<Func<ResilienceContext, bool>>() : null;
    }
}
