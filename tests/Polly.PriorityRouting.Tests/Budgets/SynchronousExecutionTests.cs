namespace Polly.PriorityRouting.Tests.Budgets;

/// <summary>
/// A synchronous caller (<c>HttpClient.Send</c>) waits for a refill on its own thread: this guards the read of Polly's
/// internal flag against a Polly upgrade that drops it.
/// </summary>
public class SynchronousExecutionTests
{
    [Fact]
    public async Task A_synchronous_execution_is_told_from_an_asynchronous_one()
    {
        var pipeline = new ResiliencePipelineBuilder().Build();

        var synchronous = pipeline.Execute(static context => SynchronousExecution.Is(context), ResilienceContextPool.Shared.Get());
        var asynchronous = await pipeline.ExecuteAsync(static context => ValueTask.FromResult(SynchronousExecution.Is(context)), ResilienceContextPool.Shared.Get());

        synchronous.Should().BeTrue();
        asynchronous.Should().BeFalse();
    }
}
