using System.Globalization;
using StackExchange.Redis;

namespace PriorityRouting.Demo;

/// <summary>
/// Tells the user, before the Redis comparison runs, whether Redis answers: the store itself fails open and would only
/// log a warning, so without this check an unreachable Redis would look like "sharing does not help".
/// </summary>
internal static class RedisProbe
{
    /// <summary>
    /// Prints whether Redis answers a PING, and returns it; <see langword="null"/> when the configuration does not parse.
    /// </summary>
    public static async Task<bool?> ReportAsync(string configuration)
    {
        ConfigurationOptions parsed;
        try
        {
            parsed = ConfigurationOptions.Parse(configuration);
        }
        catch (ArgumentException exception)
        {
            Console.Error.WriteLine($"--redis: not a StackExchange.Redis configuration string ({exception.Message}).");
            return null;
        }

        // Endpoints only: the configuration string may carry a password.
        var endpoints = string.Join(", ", parsed.EndPoints.Select(endpoint => endpoint.ToString()));
        if (endpoints.Length == 0)
        {
            Console.Error.WriteLine("--redis: the configuration string names no endpoint, e.g. 127.0.0.1:6399.");
            return null;
        }

        parsed.AbortOnConnectFail = false;
        parsed.BacklogPolicy = BacklogPolicy.FailFast;
        parsed.ConnectTimeout = 2000;
        parsed.ConnectRetry = 1;
        await using var connection = await ConnectionMultiplexer.ConnectAsync(parsed).ConfigureAwait(false);
        try
        {
            var roundTrip = await connection.GetDatabase().PingAsync().ConfigureAwait(false);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Redis at {endpoints} answers (PING {roundTrip.TotalMilliseconds:0.0} ms)."));
            return true;
        }
        catch (RedisException exception)
        {
            Console.WriteLine($"WARNING: Redis at {endpoints} is unreachable ({exception.GetType().Name}). The Redis stores fail open:");
            Console.WriteLine("         every replica routes on what it learned itself, so expect the numbers of the in-memory mode.");
            return false;
        }
    }
}
