using System.Diagnostics;

namespace Polly.PriorityRouting.Redis.Tests.Support;

internal static class Eventually
{
    /// <summary>
    /// Waits, bounded, until the condition holds; fails with the given description otherwise.
    /// </summary>
    public static Task HoldsAsync(Func<bool> condition, TimeSpan timeout, string description)
        => HoldsAsync(() => Task.FromResult(condition()), timeout, description);

    /// <summary>
    /// Waits, bounded, until the asynchronous condition holds, without blocking a thread while Redis answers.
    /// </summary>
    public static async Task HoldsAsync(Func<Task<bool>> condition, TimeSpan timeout, string description)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            if (waited.Elapsed > timeout)
            {
                throw new TimeoutException($"Not within {timeout}: {description}.");
            }

            await Task.Delay(10);
        }
    }
}
