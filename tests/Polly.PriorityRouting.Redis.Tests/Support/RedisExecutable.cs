namespace Polly.PriorityRouting.Redis.Tests.Support;

/// <summary>
/// Finds the redis-server and redis-cli executables on PATH, or fails saying how to install them.
/// </summary>
internal static class RedisExecutable
{
    public static string Find(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists)
            ?? throw new InvalidOperationException(
                $"{name} was not found on PATH. The Redis store is tested against a real server: install it with " +
                "'apt-get install -y redis-server' (it brings redis-cli; test.sh does this), then run the tests again.");
}
