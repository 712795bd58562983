using SharpTune.AI;
using SharpTune.Generation;
using SharpTune.IO;
using SharpTune.Models;
using SharpTune.Tests.Shared;

namespace SharpTune.Serving.Tests;

public class BatchedTextGeneratorTests
{
    private static string Fixture(string name) => Path.Combine(TestDirectories.Root, "tests", "fixtures", "models", name);

    // Every token is its own delta, so a test can wait for a sequence to be under way.
    private static string Ids(IReadOnlyList<long> ids) => string.Concat(ids.Select(id => $"{id} "));

    [Theory]
    [InlineData("llama-lm")]
    [InlineData("qwen2-lm")]
    [InlineData("phi-lm")]
    [InlineData("gpt2-lm")]
    [InlineData("gptneox-lm")]
    public async Task SequencesJoiningAndLeavingTheBatchGiveTheIdsOfGeneratingEachAlone(string fixture)
    {
        var directory = Fixture(fixture);
        using var model = AutoModel.FromPretrained(directory, ModelTask.CausalLM);
        var causal = (ICausalLM)model;
        long[] prompt;
        using (var reference = SafeTensorsFile.Open(Path.Combine(directory, "reference.safetensors")))
        using (var promptTensor = reference.Load("generate_prompt"))
            prompt = promptTensor.data<long>().ToArray();
        // Prompts of different lengths and budgets, no EOS (all run their full budget) so sequences overlap and leave at different steps.
        var config = GenerationConfig.FromPretrained(directory) with { EosTokenIds = [] };
        // Shorter and longer prompts than the batch's rows join it: both the joining rows and the staying ones get left-padded.
        int[] shorten = [4, 0, 2, 1, 3];
        var requests = shorten.Select((k, i) => (Prompt: prompt[..Math.Max(1, prompt.Length - 2 * k)], Budget: 6 + 5 * i)).ToList();
        Assert.True(requests[1].Prompt.Length > requests[0].Prompt.Length + 1, $"the fixture's prompt ({prompt.Length} tokens) is too short");
        var alone = requests.Select(r => new TextGenerator(causal).Generate([r.Prompt], config with { MaxNewTokens = r.Budget }).Generated(0)).ToList();

        using var generator = new BatchedTextGenerator(causal, Ids, new BatchingOptions { MaxBatchSize = 3 });
        var streams = new List<GenerationStream>();
        foreach (var (request, index) in requests.Select((r, i) => (r, i)))
        {
            var stream = generator.Submit(request.Prompt, config with { MaxNewTokens = request.Budget });
            streams.Add(stream);
            // The next request joins a batch that is already decoding.
            if (index < 2)
                await using (var tokens = stream.ReadTextAsync().GetAsyncEnumerator())
                    Assert.True(await tokens.MoveNextAsync());
        }
        var outcomes = await Task.WhenAll(streams.Select(s => s.Completion));
        for (var i = 0; i < requests.Count; i++)
        {
            Assert.Equal(alone[i], outcomes[i].TokenIds);
            Assert.Equal(FinishReason.Length, outcomes[i].FinishReason);
            Assert.Equal(requests[i].Prompt.Length, outcomes[i].PromptTokens);
        }
    }

    [Fact]
    public async Task SeededSamplingIsReproducibleAndStopStringsAreCutOff()
    {
        var directory = Path.Combine(TestDirectories.Root, "models", "stories260K");
        using var model = AutoModel.FromPretrained(directory, ModelTask.CausalLM);
        var tokenizer = PromptTokenizer.FromPretrained(directory);
        using var generator = new BatchedTextGenerator((ICausalLM)model, tokenizer.Decode);
        var prompt = tokenizer.Encode("Once upon a time");
        var sampled = GenerationConfig.FromPretrained(directory) with { MaxNewTokens = 30, DoSample = true, Temperature = 0.9, Seed = 7 };
        var runs = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => generator.Submit(prompt, sampled).Completion));
        Assert.Equal(runs[0].TokenIds, runs[1].TokenIds);
        Assert.Equal(runs[0].TokenIds, runs[2].TokenIds);

        var greedy = GenerationConfig.FromPretrained(directory) with { MaxNewTokens = 40 };
        var whole = await generator.Submit(prompt, greedy).Completion;
        var cut = whole.Text.IndexOf('.');
        Assert.True(cut > 0, whole.Text);
        var stopped = generator.Submit(prompt, greedy with { StopStrings = ["."] });
        var streamed = string.Concat(await stopped.ReadTextAsync().ToListAsync());
        var outcome = await stopped.Completion;
        Assert.Equal(FinishReason.StopString, outcome.FinishReason);
        Assert.Equal(whole.Text[..cut], outcome.Text);
        Assert.Equal(outcome.Text, streamed);
    }

    [Fact]
    public async Task AFullQueueRefusesRequestsAndCancellingEndsASequence()
    {
        var directory = Path.Combine(TestDirectories.Root, "models", "stories260K");
        using var model = AutoModel.FromPretrained(directory, ModelTask.CausalLM);
        var tokenizer = PromptTokenizer.FromPretrained(directory);
        using var generator = new BatchedTextGenerator((ICausalLM)model, tokenizer.Decode, new BatchingOptions { MaxBatchSize = 1, MaxQueuedRequests = 1 });
        var prompt = tokenizer.Encode("Once upon a time");
        var config = GenerationConfig.FromPretrained(directory) with { MaxNewTokens = 400, EosTokenIds = [] };
        // The situation under test needs the first sequence still decoding while the other two arrive; on a loaded
        // machine its 400 tokens can be done first (the others are then rightly admitted). Such a run says nothing, so
        // it is repeated; a generator that never refuses still fails on the last attempt.
        for (var attempt = 1; ; attempt++)
        {
            using var cancel = new CancellationTokenSource();
            var running = generator.Submit(prompt, config, cancel.Token);
            await using (var tokens = running.ReadTextAsync().GetAsyncEnumerator())
                Assert.True(await tokens.MoveNextAsync());
            // The first token leaves with the prefill, before the sequence joins the decoding batch and counts as active.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (generator.ActiveSequences == 0 && !running.Completion.IsCompleted && DateTime.UtcNow < deadline)
                await Task.Delay(1);
            var active = generator.ActiveSequences;
            var waiting = generator.Submit(prompt, config with { MaxNewTokens = 5 });
            QueueFullException? refused = null;
            GenerationStream? admitted = null;
            try
            {
                admitted = generator.Submit(prompt, config with { MaxNewTokens = 5 });
            }
            catch (QueueFullException e)
            {
                refused = e;
            }
            if (running.Completion.IsCompletedSuccessfully && attempt < 3)
            {
                await waiting.Completion.WaitAsync(TimeSpan.FromSeconds(60));
                if (admitted is not null)
                    await admitted.Completion.WaitAsync(TimeSpan.FromSeconds(60));
                continue;
            }
            Assert.Equal(1, active);
            Assert.NotNull(refused);

            cancel.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.Completion);
            // The slot frees up and the queued request runs.
            Assert.Equal(5, (await waiting.Completion.WaitAsync(TimeSpan.FromSeconds(60))).CompletionTokens);
            break;
        }
        Assert.Throws<ArgumentException>(() => generator.Submit(prompt, config with { MaxNewTokens = 600 }));
        Assert.Throws<ArgumentException>(() => generator.Submit([], config));
    }
}
